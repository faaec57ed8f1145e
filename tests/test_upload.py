"""The build's test step runs on what `gcloud builds submit` uploads, not on a checkout.

cloudbuild.yaml's first step runs the suite on the uploaded source. A test module that imports
something `.gcloudignore` leaves out fails the whole build at collection, so the upload set is
computed here (gitignore rules, as gcloud reads `.gcloudignore`), copied alone into a fresh
directory, and the suite is collected there and a part of it run.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.upload import included, parse, upload_set

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "ignored"),
    [
        ("bench/", "bench", True, True),
        ("bench/", "bench", False, False),  # a file named bench is not a directory
        ("bench/", "tests/bench", True, True),  # no slash before the end: any depth
        ("/bench/", "tests/bench", True, False),
        ("docs/x.md", "docs/x.md", False, True),
        ("docs/x.md", "a/docs/x.md", False, False),  # a slash inside: anchored at the root
        ("*.pyc", "collector/http/a.pyc", False, True),
        ("**/__pycache__/", "collector/__pycache__", True, True),
        ("a/**/b", "a/b", False, True),
        ("a/**/b", "a/x/y/b", False, True),
        ("a/**", "a/x/y", False, True),
        ("*.md", "docs/sub/x.md", False, True),
        ("?.txt", "ab.txt", False, False),
        ("[ab].txt", "b.txt", False, True),
        (".git", ".git", False, True),  # a worktree's .git is a file
    ],
)
def test_gitignore_rules_as_gcloud_reads_them(
    pattern: str, path: str, is_dir: bool, ignored: bool
) -> None:
    assert included(parse(pattern), path, is_dir) is not ignored


def test_the_last_matching_pattern_wins_and_negation_re_includes() -> None:
    patterns = parse("*.md\n!README.md\n# a comment\n\ndocs/\n!docs/keep.md\n")
    assert included(patterns, "README.md", False)
    assert not included(patterns, "CHANGES.md", False)
    assert not included(patterns, "docs", True)  # and so nothing under it is uploaded


def test_the_upload_leaves_out_what_the_build_does_not_need() -> None:
    files = upload_set(ROOT)
    assert {"cloudbuild.yaml", "Dockerfile", "requirements-dev.txt", "pyproject.toml"} <= set(files)
    assert "tests/helpers.py" in files and "collector/app.py" in files
    for left_out in ("bench/", "docs/", ".venv/", ".git/", ".pytest_cache/"):
        assert not [f for f in files if f.startswith(left_out)], left_out
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]


def test_no_test_module_imports_bench() -> None:
    # bench/ may import test support; the reverse would break the build (bench/ is not uploaded).
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [n for n in names if n.split(".")[0] == "bench"], path


def _pytest(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTEST_ADDOPTS"}}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _collected(done: subprocess.CompletedProcess[str]) -> list[str]:
    return sorted(line for line in done.stdout.splitlines() if "::" in line)


def test_the_build_test_step_collects_and_runs_on_exactly_the_upload(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    for rel in upload_set(ROOT):
        target = upload / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)

    there = _pytest(upload, "--collect-only", "-q")
    assert there.returncode == 0, there.stdout[-3000:] + there.stderr[-3000:]
    here = _pytest(ROOT, "--collect-only", "-q")
    assert here.returncode == 0, here.stderr[-3000:]
    # Every test of a checkout is collected from the upload too (none lost to an import).
    assert _collected(there) == _collected(here)
    assert len(_collected(there)) > 400

    # A part of the suite, run there: the build files it reads are in the upload, and the
    # benchmark's own test knows that bench/ is not.
    run = _pytest(
        upload,
        "-q",
        "-n",
        "0",  # in this process: workers of its own would each import the suite again
        "tests/test_container.py",
        "tests/test_bench.py",
        "tests/test_rules.py",
        "-k",
        "not container_command",
    )
    assert run.returncode == 0, run.stdout[-3000:]
    # Skipped there, and only for these reasons: the tests of bench/, and the five about
    # .gitignore (a checkout's file).
    assert re.search(r"\d+ passed, \d+ skipped", run.stdout), run.stdout[-500:]
    reasons = set(re.findall(r"^SKIPPED \[\d+\] [^:]+:\d+: (.+)$", run.stdout, re.M))
    assert reasons == {"bench/ is not part of the build upload", "a checkout's file, not uploaded"}
