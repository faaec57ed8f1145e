"""The Quickstart's first command: the demo, run as a new user runs it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from collector.cli.table import cell
from tests.helpers import ROOT


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector.demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_demo_keeps_the_contract_and_says_how_it_ran() -> None:
    done = demo()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[1] == (
        "settings:  seed 2026, 200 events/min, deadline 4 s, read timeout 2 s, up to 3 "
        "attempts, backoff 0.2-1 s"
    )
    [header] = [line for line in lines if line.startswith("scenario ")]
    assert " attempts " in header and "tries" not in header  # the JSON's word
    [cut] = [line for line in lines if line.startswith("every attempt cut: partial")]
    assert "connection_broken,connectio… ok" in cut  # a cut cell says it is cut
    assert "every answer kept the contract" in done.stdout
    # Every answer that is not complete says why on the next line (before, a day's active
    # users equal to the truth said `False` and no more).
    rows = lines[lines.index(header) + 2 : lines.index("", lines.index(header))]
    partial = [i for i, row in enumerate(rows) if row[79:87].strip() == "False"]
    assert len(partial) >= 2  # "every attempt cut" and the trickle can be nothing else
    for i in partial:  # why the read stopped, and what its last error was
        assert re.fullmatch(r" {41}-> not complete, a lower bound: [^:]+: .+", rows[i + 1]), rows[i]
    assert "the webhook received: firing, reminder, resolved (signatures valid: True)" in lines
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events-per-minute", "-5"], "argument --events-per-minute: -5 must be at least 1"),
        (["--seed", "x"], "argument --seed: 'x' is not a whole number"),
    ],
)
def test_a_bad_option_is_a_usage_line_not_a_traceback(args: list[str], message: str) -> None:
    done = demo(*args)
    assert done.returncode == 2 and message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_cell_is_padded_or_cut_with_an_ellipsis() -> None:
    assert cell("ok", 4) == "ok  "
    assert cell("abcdef", 4) == "abc…"
    assert cell("abcd", 4) == "abcd"
