"""docs/deploy.md run as a newcomer pastes it: every bash block, in order, in one shell, in a
copy of the checkout, with nothing in its environment that the guide does not set.

Every shell line runs for real: the variables (unset ones stop the run, `set -u`), the secret
typed at the prompt, the rules file and its dry run, the schedule's dry run, the backfill job
written out by ops/backfill-job.sh, ops/apply.sh, and the calls of step 13 against a running
service. Mixpanel is the simulator (MIXPANEL_EXPORT_URL, the one variable the guide does not
give); Google is the recording stand-in of tests/gcloud_check.py, and every command it recorded,
with every `gcloud` command shown in the guide's and ops/README.md's prose, is then checked by
the real gcloud CLI. docs/ is a checkout's: the build upload leaves it out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from werkzeug.serving import make_ssl_devcert

from collector.app import create_app
from collector.config import Settings
from collector.simulator import Simulator
from tests.gcloud_check import (
    Recorded,
    check_all,
    configuration,
    install_standin,
    real_gcloud,
    recorded,
    standin_env,
)
from tests.helpers import (
    ROOT,
    SA_SECRET,
    code_blocks,
    installed,
    make_settings,
    sim_config,
    wsgi_server,
)
from tests.test_container import SUBSTITUTIONS, deployed_env

DEPLOY = ROOT / "docs" / "deploy.md"
pytestmark = pytest.mark.skipif(not DEPLOY.exists(), reason="docs/ is not part of the build upload")
TYPED_SECRET = SA_SECRET  # what the newcomer types at step 7's prompt
SERVICE_HOST = "rt-mp-collector-abc123-ew.a.run.app"  # a Cloud Run service's address
GCLOUD_IN_A_LINE = re.compile(r"(?:^|\$\(|\|\s*)gcloud((?:\s+[a-z][\w.-]*)+)")


def bash_blocks(text: str) -> list[str]:
    return code_blocks(text, "bash")


def prose(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def shown_gcloud_commands(text: str) -> list[str]:
    """The `gcloud …` commands shown inline in a document's prose."""
    return [c.replace("\n", " ") for c in re.findall(r"`(gcloud [^`]+)`", prose(text))]


def step_values(text: str) -> dict[str, str]:
    """`export NAME=value` of the guide's first block: the values a newcomer replaces."""
    return dict(re.findall(r"^export (\w+)=(\S+)", bash_blocks(text)[0], re.M))


@dataclass
class Guide:
    done: subprocess.CompletedProcess[str]
    env: dict[str, str]  # every variable the guide left exported, at its end
    commands: list[Recorded]  # what reached the stand-in gcloud, the guide's then the prose's
    checkout: Path
    real: str
    config: Path
    scratch: Path


def copy_checkout(where: Path) -> Path:
    """The working tree (tracked and new files) as a git repository of its own, with this
    environment as its `.venv`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for rel in (p.decode() for p in listed if p):
        if (ROOT / rel).is_file():
            (where / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, where / rel)
    (where / ".venv").symlink_to(Path(sys.prefix))
    git = ["git", "-c", "user.name=guide", "-c", "user.email=guide@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "checkout"]):
        subprocess.run([*git, *args], cwd=where, check=True, capture_output=True)
    return where


@contextmanager
def service(sim: Simulator, user: str, project: str, home: Path) -> Iterator[str]:
    """The service on loopback, reading the simulator as the guide's account, behind the
    https address `gcloud run services describe` answers with: `curl` (the real one, as the
    guide calls it) is pointed at it by the newcomer's ~/.curlrc, with its certificate."""
    cert, key = make_ssl_devcert(str(home / "service"), host=SERVICE_HOST)
    settings = make_settings(
        sim.url, MIXPANEL_SERVICE_ACCOUNT_USERNAME=user, MIXPANEL_PROJECT_ID=project
    )
    with wsgi_server(create_app(settings), ssl_context=(cert, key)) as server:
        (home / ".curlrc").write_text(
            f'connect-to = "{SERVICE_HOST}:443:127.0.0.1:{server.server_port}"\ncacert = "{cert}"\n'
        )
        yield f"https://{SERVICE_HOST}"


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object printed, one after the other or pretty-printed (curl adds no newline)."""
    found, decoder, at = [], json.JSONDecoder(), 0
    while (start := text.find("{", at)) != -1:
        try:
            value, at = decoder.raw_decode(text, start)
        except ValueError:
            at = start + 1
            continue
        found.append(value)
    return found


def env_of(dump: Path) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)
    return dict(pairs)


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guide]:
    real = real_gcloud()
    installed("curl", needed_for="the deploy guide calls the service with curl: install it")
    text = DEPLOY.read_text()
    values = step_values(text)
    base = tmp_path_factory.mktemp("guide")
    checkout = copy_checkout(base / "checkout")
    (base / "home").mkdir()  # no Application Default Credentials in it
    config = configuration(base / "gcloud", values["PROJECT_ID"])
    install_standin(base / "bin")
    user, project = values["MIXPANEL_SERVICE_ACCOUNT_USERNAME"], values["MIXPANEL_PROJECT_ID"]
    sim_settings = sim_config(username=user, project_id=project, secret=TYPED_SECRET)
    with Simulator(sim_settings) as sim, service(sim, user, project, base / "home") as url:
        answers = {
            "run services describe": (url + "\n", 0),
            "beta monitoring channels create": (
                f"projects/{values['PROJECT_ID']}/notificationChannels/1\n",
                0,
            ),
            "auth print-identity-token": ("stand-in-identity-token\n", 0),
            "secrets versions access": (TYPED_SECRET, 0),
            # A new project: none of what ops/apply.sh looks for exists yet.
            "logging metrics describe": ("", 1),
            "monitoring dashboards describe": ("", 1),
            "alpha monitoring policies list": ("", 0),
        }
        env = {
            "PATH": f"{base / 'bin'}:{os.environ['PATH']}",
            "HOME": str(base / "home"),
            "LANG": "C.UTF-8",
            "NO_GCE_CHECK": "True",  # google-auth: do not look for a metadata server
            "MIXPANEL_EXPORT_URL": sim.url,
            "GUIDE_ENV": str(base / "env"),
            **standin_env(base / "gcloud.log", answers, real, config),
        }
        script = "set -euo pipefail\n" + "\n".join(bash_blocks(text))
        script += '\nenv -0 > "$GUIDE_ENV"\n'
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=checkout,
            env=env,
            input=TYPED_SECRET + "\n",
            capture_output=True,
            text=True,
            timeout=600,
        )
        final = env_of(base / "env") if (base / "env").exists() else {}
        # The commands shown in the prose, with the variables the guide left behind (if it
        # failed, the tests below say how).
        shown = shown_gcloud_commands(text) + shown_gcloud_commands(
            (ROOT / "ops" / "README.md").read_text()
        )
        for command in shown if done.returncode == 0 else []:
            if re.fullmatch(r"[a-z -]+", command):  # a command's name: it must exist
                command += " --help"
            subprocess.run(
                ["bash", "-c", command],
                cwd=checkout,
                env={**final, **env, "STANDIN_LOG": str(base / "shown.log")},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=True,
                timeout=60,
            )
    yield Guide(
        done,
        final,
        recorded(base / "gcloud.log") + recorded(base / "shown.log"),
        checkout,
        real,
        config,
        base,
    )


def substitutions(guide: Guide) -> dict[str, str]:
    [submit] = [c for c in guide.commands if c.words() == "builds submit"]
    [value] = [a.split("=", 1)[1] for a in submit.args if a.startswith("--substitutions=")]
    return dict(pair.split("=", 1) for pair in value.split(","))


# -- the tests ------------------------------------------------------------------------------------


def test_the_guide_runs_end_to_end_in_one_shell_and_runs_every_gcloud_command_it_shows(
    guide: Guide,
) -> None:
    assert guide.done.returncode == 0, guide.done.stderr[-3000:]
    joined = "\n".join(bash_blocks(DEPLOY.read_text())).replace("\\\n", " ")
    shown = {
        " ".join(m.split()) for line in joined.splitlines() for m in GCLOUD_IN_A_LINE.findall(line)
    }
    ran = [c.words() for c in guide.commands]
    assert sorted(s for s in shown if not any(r.startswith(s) for r in ran)) == []
    assert len(shown) > 20


def test_every_gcloud_command_parses_in_the_real_cli(guide: Guide) -> None:
    assert guide.done.returncode == 0, guide.done.stderr[-3000:]
    assert len(guide.commands) > 60  # the guide's, ops/apply.sh's and the prose's
    assert check_all(guide.commands, guide.real, guide.config, guide.scratch) == []


def test_every_variable_is_explained_where_it_is_set(guide: Guide) -> None:
    # Unset ones would have stopped the run (set -u): every one the guide uses, it sets.
    assert guide.done.returncode == 0, guide.done.stderr[-3000:]
    for block in bash_blocks(DEPLOY.read_text()):
        commands = re.split(r"(?<!\\)\n", block)  # a command with its continued lines
        for command in commands:
            kept = command.startswith("export ") or re.fullmatch(
                r"[A-Z_]+=\$\(.*\)\s*(#.*)?", command, re.S
            )
            if kept:  # a variable for later commands, not one command's environment
                assert "#" in command, f"no word on what this is: {command}"


def test_the_secret_typed_at_the_prompt_is_stored_exactly_and_shown_nowhere(guide: Guide) -> None:
    [create] = [
        c
        for c in guide.commands
        if c.words().startswith("secrets create") and guide.env["SECRET"] in c.args
    ]
    assert create.input == TYPED_SECRET
    assert "MIXPANEL_SECRET_VALUE" not in guide.env  # unset again
    for command in guide.commands:
        assert TYPED_SECRET not in " ".join(command.args)


def test_the_build_takes_every_setting_from_the_variables_and_they_load(guide: Guide) -> None:
    given = substitutions(guide)
    # Cloud Build refuses a substitution the file does not use.
    assert set(given) - {"SHORT_SHA"} <= set(SUBSTITUTIONS) - {"PROJECT_ID"}
    assert given["SHORT_SHA"] == guide.env["TAG"]
    env = deployed_env(
        {
            **SUBSTITUTIONS,
            **given,
            "PROJECT_ID": guide.env["PROJECT_ID"],
            "secret:MIXPANEL_SERVICE_ACCOUNT_SECRET": TYPED_SECRET,
        }
    )
    assert env["STATE_STORE"] == guide.env["RULE_STATE"].strip() != ""
    assert env["LEDGER_STORE"] == guide.env["SLICE_LEDGER"] != ""
    assert env["BUDGET_STORE"] == guide.env["QUERY_BUDGET"] != ""
    settings = Settings.from_env(env)
    assert settings.collector_rules == "rules.yaml"
    assert (guide.checkout / settings.collector_rules).is_file()  # uploaded: it goes in the image


def test_the_backfill_job_is_written_from_the_same_values_as_the_service(guide: Guide) -> None:
    given = substitutions(guide)
    text = (guide.checkout / "backfill-job.yaml").read_text()
    assert "${" not in text
    spec = yaml.safe_load(text)["spec"]["template"]["spec"]["template"]["spec"]
    [container] = spec["containers"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert spec["serviceAccountName"] == given["_RUNTIME_SA"]
    assert container["image"] == (
        f"{given['_REGION']}-docker.pkg.dev/{guide.env['PROJECT_ID']}/{given['_REPOSITORY']}/"
        f"{given['_SERVICE']}:{given['SHORT_SHA']}"
    )
    assert env["MIXPANEL_SERVICE_ACCOUNT_USERNAME"] == given["_MIXPANEL_USERNAME"]
    assert env["MIXPANEL_PROJECT_ID"] == given["_MIXPANEL_PROJECT_ID"]
    assert env["MIXPANEL_REGION"] == given["_MIXPANEL_REGION"]
    assert env["MIXPANEL_SERVICE_ACCOUNT_SECRET"] == {
        "secretKeyRef": {"name": given["_MIXPANEL_SECRET"], "key": "latest"}
    }
    assert env["LEDGER_STORE"] == given["_LEDGER_STORE"]
    assert env["BUDGET_STORE"] == given["_BUDGET_STORE"]
    # gcloud reads the file against the Cloud Run Job schema before it needs credentials.
    [replace] = [c for c in guide.commands if c.words() == "run jobs replace backfill-job.yaml"]
    assert check_all([replace], guide.real, guide.config, guide.scratch) == []


def test_the_local_dry_runs_print_what_the_guide_says(guide: Guide) -> None:
    out = guide.done.stdout
    assert '"dry_run": true' in out  # collector check --dry-run, against the simulator
    [figure] = re.findall(r"here\s+`(\d+) of 60`", DEPLOY.read_text())
    assert f"Export queries in the worst rolling hour: {figure} of 60" in out
    assert "dry run: nothing changed" in out


def test_the_schedule_without_dry_run_parses_and_stops_at_the_missing_credentials(
    guide: Guide,
) -> None:
    [block] = [b for b in bash_blocks(DEPLOY.read_text()) if "collector.schedule" in b]
    command = block.replace("\\\n", " ").replace("--dry-run", "")
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=guide.checkout,
        env={**guide.env, "HOME": str(guide.scratch / "home")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr.startswith("error: no Google credentials:")


def test_the_calls_of_step_13_reach_the_service_and_it_answers(guide: Guide) -> None:
    answers = json_objects(guide.done.stdout)
    assert {"status": "ok"}.items() <= next(a for a in answers if "status" in a).items()
    metrics = [a for a in answers if "complete" in a]
    assert [(a["metric"], a["complete"]) for a in metrics] == [
        ("distinct_users", True),
        ("events", True),
    ]


def test_the_build_keeps_secrets_added_by_hand_as_gcloud_documents_its_flags() -> None:
    """Step 8 adds a notifier's secret to the service by hand; the next deploy must keep it."""
    done = subprocess.run(
        [real_gcloud(), "run", "deploy", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"], "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
    )
    plain = re.sub(r"\s+", " ", re.sub(r"\x1b\[[0-9;]*m", "", done.stdout))
    removes = re.search(
        r"--set-secrets=\S+ List of key-value pairs to set as secrets\. (.{60})", plain
    )
    assert removes and removes.group(1).startswith("All existing secrets will be removed first")
    [deploy] = [
        s
        for s in yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())["steps"]
        if s["id"] == "deploy"
    ]
    flags = [a.split("=", 1)[0] for a in deploy["args"]]
    assert "--update-secrets" in flags and "--set-secrets" not in flags


def test_the_real_cli_refuses_a_command_or_a_flag_it_does_not_know(tmp_path: Path) -> None:
    """The check above is only as good as this: gcloud, without credentials, still says when a
    command does not exist or a flag is misspelt (as `gcloud monitoring policies` did before:
    alert policies are alpha only)."""
    real = real_gcloud()
    config = configuration(tmp_path / "gcloud", "my-project")
    wrong = [
        Recorded(["monitoring", "policies", "list", "--project=my-project"], str(ROOT), None),
        Recorded(["storage", "buckets", "create", "gs://b", "--locaton=eu"], str(ROOT), None),
        Recorded(["run", "jobs", "replace", "no-such-job.yaml"], str(ROOT), None),
    ]
    right = Recorded(["storage", "buckets", "create", "gs://b", "--location=eu"], str(ROOT), None)
    found = dict(check_all([*wrong, right], real, config, tmp_path))
    assert list(found) == [" ".join(c.args) for c in wrong]
    assert "Invalid choice: 'policies'" in found["monitoring policies list --project=my-project"]
    assert "unrecognized arguments: --locaton=eu" in found[" ".join(wrong[1].args)]
