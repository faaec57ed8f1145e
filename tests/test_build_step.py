"""What the build's test step runs: the suite but for the tests marked `timing`, which bound a
duration from above (a loaded build machine can miss such a bound; a deploy must not depend
on the machine's speed). Such a test left unmarked would put the deploy at the mercy of the
machine again, so every test that compares a time it measured with `<` must carry the mark.
"""

from __future__ import annotations

import ast
import re
import tomllib

import yaml

from tests.conftest import asserts_timing
from tests.helpers import ROOT

TIME_CALLS = {"monotonic", "perf_counter", "time"}
# What the suite calls a duration it measured (`elapsed = time.monotonic() - started`).
TIME_NAMES = re.compile(r"^(elapsed|took|seconds|duration)$")


def _measured_names(fn: ast.FunctionDef) -> set[str]:
    """Names the test assigns from a clock, and the suite's names for a measured duration."""
    names = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and _reads_clock(node.value):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        if isinstance(node, ast.Name) and TIME_NAMES.match(node.id):
            names.add(node.id)
    return names


def _reads_clock(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr in TIME_CALLS
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "time"
        for n in ast.walk(node)
    )


def _bounds_a_duration(fn: ast.FunctionDef) -> bool:
    measured = _measured_names(fn)
    for node in ast.walk(fn):
        if not isinstance(node, ast.Assert):
            continue
        for cmp in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            if not any(isinstance(op, (ast.Lt, ast.LtE)) for op in cmp.ops):
                continue
            left = {n.id for n in ast.walk(cmp.left) if isinstance(n, ast.Name)}
            if _reads_clock(cmp.left) or left & measured:
                return True
    return False


def _marked_timing(fn: ast.FunctionDef) -> bool:
    return any(ast.unparse(d) == "pytest.mark.timing" for d in fn.decorator_list)


def _tests() -> list[tuple[str, ast.FunctionDef]]:
    out = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                out.append((f"{path.relative_to(ROOT)}::{node.name}", node))
    return out


def test_the_build_leaves_out_the_timing_tests_and_pytest_knows_the_mark() -> None:
    steps = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())["steps"]
    [step] = [s for s in steps if s["id"] == "test"]
    assert step["args"][-1].endswith('python -m pytest -q -m "not timing"')
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    assert [m.split(":")[0] for m in options["ini_options"]["markers"]] == ["timing"]


def test_every_test_that_bounds_a_duration_from_above_is_marked_timing() -> None:
    bounding = [name for name, fn in _tests() if _bounds_a_duration(fn)]
    unmarked = [name for name, fn in _tests() if _bounds_a_duration(fn) and not _marked_timing(fn)]
    assert unmarked == []
    # The scan finds what it is for (else the assertion above would hold for nothing).
    assert "tests/test_faults.py::test_the_total_deadline_holds_whatever_the_server_does" in (
        bounding
    )


def test_a_bound_from_below_or_on_a_setting_is_not_a_timing_test() -> None:
    """Slowness cannot break `took >= 1.0` (it only adds time), nor a bound on a setting."""
    source = (
        "def test_a():\n  started = time.monotonic()\n  assert time.monotonic() - started >= 1\n"
        "def test_b():\n  assert s.export_deadline_seconds < 300\n"
        "def test_c():\n  started = time.monotonic()\n  assert time.monotonic() - started < 2\n"
        "def test_d():\n  elapsed = run()\n  assert elapsed < 2\n"
    )
    tests = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    assert [fn.name for fn in tests if _bounds_a_duration(fn)] == ["test_c", "test_d"]


def test_the_build_leaves_out_the_time_bounds_inside_larger_checks_and_only_there() -> None:
    """The contract's "answered inside the deadline" sits in tests that check much more: a
    run that leaves out `timing` (the build's) leaves out that part of them, every other run
    keeps it."""
    assert asserts_timing("not timing") is False
    assert asserts_timing("") is True and asserts_timing("timing") is True
    assert asserts_timing("not slow") is True


def test_the_build_has_the_time_to_run_the_suite_and_deploy() -> None:
    # Cloud Build's default is 10 minutes; the test step alone takes several.
    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    assert build["timeout"].endswith("s") and int(build["timeout"][:-1]) >= 1800
