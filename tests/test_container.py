"""The container as far as a machine without Docker can check it.

The Dockerfile's own CMD and ENV are read and run (gunicorn from this environment, the repository
as the image's working directory), with the environment cloudbuild.yaml deploys, against the
simulator. The deploy settings are checked against each other and against what the service
reads; the ignore files against the paths each must keep or drop.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import yaml

from collector import __version__
from collector.config import setting_names
from collector.env_names import GUNICORN_NAMES
from collector.schedule.cli import DEADLINE_MARGIN
from collector.simulator import Simulator
from tests.conftest import past_window
from tests.helpers import PROJECT_ID, SA_SECRET, SA_USER, free_port
from tests.upload import included, parse, uploaded

ROOT = Path(__file__).resolve().parent.parent


# -- the Dockerfile -------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    return out


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in instructions():
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(args))
    return env


def dockerfile_cmd() -> list[str]:
    [cmd] = [args for keyword, args in instructions() if keyword == "CMD"]
    return json.loads(cmd)  # exec form: a JSON array, or this raises


def test_the_image_is_slim_python_311_unbuffered_and_runs_the_shipped_gunicorn_config() -> None:
    [base] = [args for keyword, args in instructions() if keyword == "FROM"]
    assert base == "python:3.11-slim"
    assert dockerfile_env()["PYTHONUNBUFFERED"] == "1"
    assert dockerfile_cmd() == ["gunicorn", "--config", "gunicorn.conf.py", "main:app"]


def test_the_service_runs_as_a_non_root_user() -> None:
    steps = instructions()
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}
    last_user = max(i for i, (keyword, _) in enumerate(steps) if keyword == "USER")
    assert last_user < [keyword for keyword, _ in steps].index("CMD")


def test_requirements_are_installed_before_the_code_is_copied() -> None:
    steps = [f"{keyword} {args}" for keyword, args in instructions()]
    copy_requirements = steps.index("COPY requirements.txt ./")
    install = steps.index("RUN pip install --no-cache-dir -r requirements.txt")
    copy_code = steps.index("COPY . .")
    assert copy_requirements < install < copy_code


# -- the deploy settings --------------------------------------------------------------------------


def cloudbuild() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())


def deploy_flags() -> dict[str, str]:
    [step] = [s for s in cloudbuild()["steps"] if s["id"] == "deploy"]
    return dict(arg.removeprefix("--").partition("=")[::2] for arg in step["args"][2:])


def substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{?(_?[A-Z_]+)\}?", lambda m: values[m.group(1)], text)


def deployed_env(values: dict[str, str]) -> dict[str, str]:
    """The service's environment as `gcloud run deploy` sets it (secrets become plain values)."""
    flags = deploy_flags()
    env = dict(pair.split("=", 1) for pair in substitute(flags["set-env-vars"], values).split(","))
    for pair in flags["update-secrets"].split(","):
        name, _, _ = pair.partition("=")
        env[name] = values["secret:" + name]
    return env


SUBSTITUTIONS = {
    **cloudbuild()["substitutions"],
    "PROJECT_ID": "my-project",
    "SHORT_SHA": "abc1234",
    "_MIXPANEL_USERNAME": SA_USER,
    "_MIXPANEL_PROJECT_ID": PROJECT_ID,
    "secret:MIXPANEL_SERVICE_ACCOUNT_SECRET": SA_SECRET,
}


def test_every_substitution_used_is_defined_except_the_required_ones() -> None:
    text = (ROOT / "cloudbuild.yaml").read_text()
    used = set(re.findall(r"\$\{(_[A-Z_]+)\}", text))
    assert used - set(cloudbuild()["substitutions"]) == {
        "_MIXPANEL_USERNAME",
        "_MIXPANEL_PROJECT_ID",
    }


def test_the_build_tests_then_pushes_and_deploys_the_tagged_image() -> None:
    build = cloudbuild()
    steps = {step["id"]: step for step in build["steps"]}
    assert list(steps) == ["test", "build", "push", "deploy"]
    assert steps["test"]["name"] == "python:3.11-slim"
    assert "pip install --no-cache-dir -q -r requirements-dev.txt" in steps["test"]["args"][-1]
    assert steps["test"]["args"][-1].endswith('&& python -m pytest -q -m "not timing"')
    image = "${_REGION}-docker.pkg.dev/$PROJECT_ID/${_REPOSITORY}/${_SERVICE}:$SHORT_SHA"
    assert f"--tag={image}" in steps["build"]["args"]
    assert steps["push"]["args"] == ["push", image]
    assert deploy_flags()["image"] == image
    assert build["images"] == [image]


def test_the_service_is_private_and_runs_as_its_own_account_with_the_secret() -> None:
    flags = deploy_flags()
    assert "no-allow-unauthenticated" in flags
    assert flags["service-account"] == "${_RUNTIME_SA}"
    # --update-secrets: a notifier's secret added to the service by hand (docs/deploy.md,
    # step 8) stays across deploys; --set-secrets would remove every secret it does not name.
    assert "set-secrets" not in flags
    assert flags["update-secrets"] == "MIXPANEL_SERVICE_ACCOUNT_SECRET=${_MIXPANEL_SECRET}:latest"
    env = deployed_env(SUBSTITUTIONS)
    assert env["LOG_FORMAT"] == "json"
    assert env["GOOGLE_CLOUD_PROJECT"] == "my-project"


# The shipped defaults, and several instances sharing the project's budget (docs/deploy.md).
SHARED_BUDGET = {**SUBSTITUTIONS, "_BUDGET_STORE": "gs://b/budget", "_MAX_INSTANCES": "4"}


@pytest.mark.parametrize("substitutions", [SUBSTITUTIONS, SHARED_BUDGET], ids=["default", "shared"])
def test_timeout_concurrency_and_instances_agree_with_the_service_settings(
    substitutions: dict[str, str],
) -> None:
    flags = {k: substitute(v, substitutions) for k, v in deploy_flags().items()}
    env = deployed_env(substitutions)
    deadline = float(env["EXPORT_DEADLINE_SECONDS"])
    # Cloud Run must not cut a request the reader is still allowed to finish, and Scheduler's
    # default attempt deadline (deadline + margin) must fit in the request timeout.
    assert int(flags["timeout"]) >= deadline + DEADLINE_MARGIN
    # A /check reads, then notifies: both deadlines, and time to answer, fit in the timeout.
    assert int(flags["timeout"]) >= deadline + float(env["NOTIFY_DEADLINE_SECONDS"]) + 10
    assert int(flags["concurrency"]) == int(env["GUNICORN_WORKERS"]) * int(env["GUNICORN_THREADS"])
    # All instances together stay within Mixpanel's 60: the budget is per process unless
    # BUDGET_STORE makes it the project's.
    processes = int(flags["max-instances"]) * int(env["GUNICORN_WORKERS"])
    if not env["BUDGET_STORE"]:
        assert processes * int(env["EXPORT_QUERIES_PER_HOUR"]) <= 60
    assert int(env["EXPORT_QUERIES_PER_HOUR"]) <= 60


def test_every_deployed_variable_is_one_the_service_reads() -> None:
    known = setting_names() | GUNICORN_NAMES
    assert set(deployed_env(SUBSTITUTIONS)) <= known
    # ... and every one gunicorn's configuration is said to read, it reads (its own
    # GUNICORN_CMD_ARGS is gunicorn's business).
    source = (ROOT / "collector" / "gunicorn_config.py").read_text()
    for name in GUNICORN_NAMES - {"GUNICORN_CMD_ARGS"}:
        assert f'"{name}"' in source, name


# -- the ignore files -----------------------------------------------------------------------------


def ignored(path: str) -> bool:
    """Whether `docker build` leaves `path` out, by the patterns .dockerignore uses.

    Docker anchors every pattern at the root (`*.md` is a top-level file only) and `**/` spans
    directories; the upload's `.gcloudignore` has gitignore's rules instead (tests/upload.py).
    """
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip().rstrip("/")
        if not pattern or pattern.startswith("#"):
            continue
        if pattern.startswith("**/"):
            parts = path.split("/")
            tails = [
                "/".join(parts[i:j])
                for i in range(len(parts))
                for j in range(i + 1, len(parts) + 1)
            ]
            if any(fnmatch(tail, pattern[3:]) for tail in tails):
                return True
        elif (
            path == pattern
            or path.startswith(pattern + "/")
            or ("/" not in path and fnmatch(path, pattern))
        ):
            return True
    return False


LEFT_OUT_OF_BOTH = [
    ".git/HEAD",
    ".venv/bin/python",
    "bench/modes.py",
    "docs/benchmarks.md",
    "collector/__pycache__/app.cpython-311.pyc",
    ".pytest_cache/README.md",
    # A local run's state and lock (STATE_STORE=file:$PWD/collector-state.json): before, the
    # build uploaded them.
    "collector-state.json",
    "collector-state.json.lock",
    "test-artifacts/status.png",
    "build/lib/collector/app.py",
    # The backfill job with a deployment's names (docs/deploy.md): neither built nor shipped.
    "backfill-job.yaml",
]
NEEDED_BY_THE_TEST_STEP = [
    "tests/test_container.py",
    "tests/helpers.py",
    "tests/reliability/chaos.py",
    "requirements-dev.txt",
    "pyproject.toml",
    "setup.py",  # tests/test_package.py builds the package
    "ops/dashboard.json",
    "ops/metrics/rt-mp-requests.yaml",
    "Dockerfile",
    ".dockerignore",
    ".gcloudignore",
    "cloudbuild.yaml",
]
NEEDED_BY_THE_IMAGE = [
    "main.py",
    "gunicorn.conf.py",
    "requirements.txt",
    "collector/app.py",
    "collector/export/reader.py",
]


@pytest.mark.parametrize("path", LEFT_OUT_OF_BOTH)
def test_caches_environments_history_and_docs_are_never_uploaded_nor_in_the_image(path) -> None:
    assert not uploaded(ROOT, path)
    assert ignored(path)


@pytest.mark.skipif(not (ROOT / ".gitignore").exists(), reason="a checkout's file, not uploaded")
@pytest.mark.parametrize(
    "path",
    [
        "collector-state.json",
        "collector-state.json.lock",  # before, `git status` showed it after a local run
        "test-artifacts/status.png",
        "build/lib/collector/app.py",
        "rt_mp_collector.egg-info/PKG-INFO",
    ],
)
def test_what_local_runs_builds_and_tests_leave_behind_is_git_ignored(path: str) -> None:
    patterns = parse((ROOT / ".gitignore").read_text())
    parts = path.split("/")
    kept = [included(patterns, "/".join(parts[:i]), True) for i in range(1, len(parts))]
    assert not (all(kept) and included(patterns, path, False))


@pytest.mark.parametrize("path", NEEDED_BY_THE_TEST_STEP + NEEDED_BY_THE_IMAGE)
def test_the_build_source_keeps_what_the_test_step_and_the_image_need(path) -> None:
    assert uploaded(ROOT, path)


@pytest.mark.parametrize("path", NEEDED_BY_THE_TEST_STEP)
def test_tests_and_build_files_stay_out_of_the_image(path) -> None:
    assert ignored(path)


@pytest.mark.parametrize("path", NEEDED_BY_THE_IMAGE)
def test_the_image_keeps_the_service(path) -> None:
    assert not ignored(path)


# -- the container's command, run -----------------------------------------------------------------


def start_container(
    sim: Simulator, tmp_path: Path, port: int, **substitutions: str
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """The Dockerfile's CMD with its ENV and the deployed environment, as Cloud Run runs it."""
    command = dockerfile_cmd()
    # The image puts gunicorn on PATH; here it is next to this interpreter.
    command[0] = str(Path(sys.executable).parent / command[0])
    env = {
        "PATH": os.environ.get("PATH", ""),
        **dockerfile_env(),
        **deployed_env({**SUBSTITUTIONS, **substitutions}),
        "MIXPANEL_EXPORT_URL": sim.url,
        "PORT": str(port),
        "K_SERVICE": "rt-mp-collector",  # set by Cloud Run
        # The image's user has no home it can write (useradd --no-create-home); not even root
        # can create a directory here.
        "HOME": "/proc/no-home",
    }
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
    return proc, out, err


@pytest.mark.timing
def test_the_container_command_serves_and_stops_on_sigterm(sim: Simulator, tmp_path: Path) -> None:
    port = free_port()
    proc, out, err = start_container(sim, tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    try:
        # Refused or unanswered until a worker has imported the app (slow on a cold checkout).
        ready_by = time.monotonic() + 60
        while time.monotonic() < ready_by:
            try:
                health = requests.get(f"{base}/healthz", timeout=2)
                break
            except requests.RequestException:
                assert proc.poll() is None, err.read_text()[-2000:]
                time.sleep(0.2)
        else:
            pytest.fail("the container command did not serve: " + err.read_text()[-2000:])
        assert health.status_code == 200
        assert health.json() == {
            "status": "ok",
            "version": __version__,
            "queries_left_this_hour": 60,
        }

        window = past_window()
        query = urlencode({"from": window.start.isoformat(), "to": window.end.isoformat()})
        answer = requests.get(f"{base}/distinct-users?{query}", timeout=30)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "application/json"
        body = answer.json()
        assert body["complete"] is True
        assert body["value"] == sim.truth(window.start, window.end).distinct_users

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # LOG_FORMAT=json as deployed: the summary is a structured line on stdout.
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    summaries = [line for line in lines if line.get("summary")]
    assert [(s["metric"], s["status"], s["complete"]) for s in summaries] == [
        ("distinct_users", 200, True)
    ]
    assert SA_SECRET not in out.read_text() + err.read_text()
    assert "[ERROR]" not in err.read_text()  # e.g. gunicorn's control socket under $HOME


def test_the_container_with_rules_and_no_cloud_storage_store_refuses_to_start(
    sim: Simulator, tmp_path: Path
) -> None:
    # The documented deploy with _COLLECTOR_RULES and no _STATE_STORE: before, the service
    # started, and every /check spent its Export query and then answered 500.
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            {"rules": [{"name": "a", "metric": "events", "window_minutes": 5, "above": 1}]}
        )
    )
    for store in ("", f"file:{tmp_path / 'state.json'}"):
        proc, out, _ = start_container(
            sim, tmp_path, free_port(), _COLLECTOR_RULES=str(rules), _STATE_STORE=store
        )
        try:
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert code != 0
        entries = [json.loads(line) for line in out.read_text().splitlines() if line[:1] == "{"]
        [critical] = [e for e in entries if e.get("severity") == "CRITICAL"]
        assert "STATE_STORE" in critical["message"], critical
        assert "gs://<bucket>/<object>" in critical["message"]
        if store:
            assert "lose it on every restart" in critical["message"]
        assert not (tmp_path / "state.json").exists()
