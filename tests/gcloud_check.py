"""The gcloud commands of a guide, recorded and then checked by the real gcloud CLI.

No Google Cloud project can be reached from a test, so a guide runs with a stand-in `gcloud`
first on its PATH: it records each command (its arguments, its directory, what it read on its
input) and answers the few whose output a guide keeps, as a new project would. That is the one
thing mocked, because nothing else can stand in for Google. Every recorded command is then given
to the real gcloud CLI, with an account and a project configured but no credentials and no
network: a command that does not parse (an unknown command or flag, a file gcloud cannot read
or that its schema refuses) fails there at once; one that parses stops at the missing
credentials, before it would reach Google. `gcloud config` is local, so the stand-in hands it
to the real CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import installed

ACCOUNT = "you@example.com"
# What the real CLI says when a command parsed and then needed credentials it does not have.
NO_CREDENTIALS = (
    "does not have any valid credentials",
    "You do not currently have an active account selected",
    "Application default credentials have not been set up",
)
STANDIN = '''#!{python}
"""A stand-in for gcloud: records the command and answers as a new project would."""
import json, os, sys

args = sys.argv[1:]
data = sys.stdin.read() if "--data-file=-" in args else None
# A file given by name is kept: ops/apply.sh removes its copies when it ends.
for i, arg in enumerate(args):
    flag, _, path = arg.partition("=")
    if flag.endswith("-from-file") and os.path.isfile(path):
        keep = os.environ["STANDIN_KEEP"]
        kept = os.path.join(keep, str(len(os.listdir(keep))))
        os.makedirs(kept)
        kept = os.path.join(kept, os.path.basename(path))
        with open(path, "rb") as src, open(kept, "wb") as dst:
            dst.write(src.read())
        args[i] = flag + "=" + kept
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "cwd": os.getcwd(), "input": data}}) + "\\n")
if args[:1] == ["config"]:
    os.execv(os.environ["REAL_GCLOUD"], ["gcloud", *sys.argv[1:]])
words = [a for a in args if not a.startswith("-")]
answers = json.loads(os.environ["STANDIN_ANSWERS"])
for command in sorted(answers, key=len, reverse=True):
    if " ".join(words).startswith(command):
        out, status = answers[command]
        print(out, end="")
        sys.exit(status)
if any(a.startswith("--format=value(") for a in args):
    sys.exit("stand-in gcloud: no answer for " + " ".join(args))
'''


def real_gcloud() -> str:
    return installed(
        "gcloud",
        needed_for="the deploy guide's gcloud commands are checked by the gcloud CLI: install it",
    )


def configuration(where: Path, project: str) -> Path:
    """A gcloud configuration as `gcloud auth login` and `config set project` leave it, but
    with no credentials; no check of Compute Engine's metadata server, no update check."""
    (where / "configurations").mkdir(parents=True)
    (where / "active_config").write_text("default")
    (where / "gce").write_text("False")
    (where / "configurations" / "config_default").write_text(
        f"[core]\naccount = {ACCOUNT}\nproject = {project}\ndisable_usage_reporting = True\n"
        "[component_manager]\ndisable_update_check = True\n"
    )
    return where


def install_standin(bin_dir: Path) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    standin = bin_dir / "gcloud"
    standin.write_text(STANDIN.format(python=sys.executable))
    standin.chmod(0o755)
    return standin


def standin_env(
    log: Path, answers: dict[str, tuple[str, int]], real: str, config: Path
) -> dict[str, str]:
    """What the stand-in reads from its environment."""
    keep = log.parent / "kept-files"
    keep.mkdir(exist_ok=True)
    return {
        "STANDIN_LOG": str(log),
        "STANDIN_KEEP": str(keep),
        "STANDIN_ANSWERS": json.dumps(answers),
        "REAL_GCLOUD": real,
        "CLOUDSDK_CONFIG": str(config),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
    }


@dataclass(frozen=True)
class Recorded:
    args: list[str]
    cwd: str
    input: str | None

    def words(self) -> str:
        """The command itself, without its flags and values: `run jobs replace`."""
        return " ".join(a for a in self.args if not a.startswith("-"))


def recorded(log: Path) -> list[Recorded]:
    if not log.exists():
        return []
    return [Recorded(**json.loads(line)) for line in log.read_text().splitlines()]


def verdict(command: Recorded, real: str, config: Path, scratch: Path) -> str | None:
    """None if the real CLI parsed the command (it stopped at the credentials, or it is local
    and ran); else what it said."""
    own = scratch / f"config-{abs(hash((tuple(command.args), command.cwd)))}"
    shutil.copytree(config, own, dirs_exist_ok=True)  # a configuration of its own: no races
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(scratch),
        "CLOUDSDK_CONFIG": str(own),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
    }
    done = subprocess.run(
        [real, *command.args],
        cwd=command.cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = done.stderr
    if done.returncode == 0:
        return None
    if done.returncode == 1 and any(m in said for m in NO_CREDENTIALS):
        return None
    # An interactive sign-in: it got as far as asking for the code.
    signing_in = command.words() in ("auth login", "auth application-default login")
    if done.returncode == 1 and signing_in and "EOF when reading a line" in said:
        return None
    return f"exit {done.returncode}: {said.strip()[-600:]}"


def check_all(commands: Iterable[Recorded], real: str, config: Path, scratch: Path) -> list[Any]:
    """(command, what the real CLI said) for every command it did not accept."""
    commands = list(commands)
    with ThreadPoolExecutor(3) as pool:
        verdicts = list(pool.map(lambda c: verdict(c, real, config, scratch), commands))
    return [(" ".join(c.args), v) for c, v in zip(commands, verdicts, strict=True) if v]
