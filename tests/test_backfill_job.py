"""ops/backfill-job.sh writes the backfill Cloud Run Job from a deployment's variables and
refuses, naming them, while any is missing or holds what a name or an address cannot."""

from __future__ import annotations

import os
import subprocess

import yaml

from tests.helpers import ROOT

SCRIPT = ROOT / "ops" / "backfill-job.sh"
VALUES = {
    "PROJECT_ID": "p",
    "REGION": "europe-west1",
    "REPOSITORY": "repo",
    "SERVICE": "svc",
    "TAG": "abc1234",
    "RUNTIME_SA": "run@p.iam.gserviceaccount.com",
    "SECRET": "mp-secret",
    "MIXPANEL_SERVICE_ACCOUNT_USERNAME": "collector.abc.mp-service-account",
    "MIXPANEL_PROJECT_ID": "1234567",
    "MIXPANEL_REGION": "eu",
    "SLICE_LEDGER": "gs://b/ledger",
    "QUERY_BUDGET": "gs://b/budget",
}


def write(**values: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], **values}
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_job_carries_every_value_and_no_placeholder() -> None:
    done = write(**VALUES)
    assert done.returncode == 0, done.stderr
    assert "${" not in done.stdout
    job = yaml.safe_load(done.stdout)
    spec = job["spec"]["template"]["spec"]["template"]["spec"]
    [container] = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert spec["serviceAccountName"] == "run@p.iam.gserviceaccount.com"
    assert container["image"] == "europe-west1-docker.pkg.dev/p/repo/svc:abc1234"
    assert env["MIXPANEL_PROJECT_ID"] == "1234567"  # a string, as Cloud Run wants it
    assert (env["LEDGER_STORE"], env["BUDGET_STORE"]) == ("gs://b/ledger", "gs://b/budget")
    secret = next(e for e in container["env"] if e["name"] == "MIXPANEL_SERVICE_ACCOUNT_SECRET")
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "mp-secret", "key": "latest"}


def test_a_missing_value_is_named_and_nothing_is_written() -> None:
    values = {k: v for k, v in VALUES.items() if k not in ("TAG", "QUERY_BUDGET")}
    done = write(**{**values, "SECRET": ""})
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("error: set QUERY_BUDGET, SECRET, TAG ")


def test_a_value_that_could_change_the_yaml_is_refused() -> None:
    done = write(**{**VALUES, "MIXPANEL_PROJECT_ID": '1"\n  injected: true'})
    assert (done.returncode, done.stdout) == (2, "")
    assert "MIXPANEL_PROJECT_ID may hold only letters, digits and @._:/-" in done.stderr
