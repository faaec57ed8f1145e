"""`pip install .`: a wheel of the service alone, its pinned dependencies, the `collector`
command, and the version a user can see.

The wheel is built without build isolation from a copy of the sources (the suite's environment
pins the same setuptools as pyproject.toml's build requirement; CI also runs a real
`pip install .` in a fresh environment), then installed where nothing else is, and its command
is run from outside the checkout. `pip install .` of a copy goes into a fresh virtual
environment too, which then serves the example rules it ships.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import requests

from collector import __version__
from tests.helpers import ROOT, clean_env, read_banner

SOURCES = ("collector", "pyproject.toml", "setup.py", "README.md", "LICENSE", "requirements.txt")


def pip(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def sources(src: Path) -> Path:
    """A copy of what a package is built from."""
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    return src


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("package")
    src = sources(tmp / "src")
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src), cwd=tmp)
    [built] = (tmp / "dist").glob("*.whl")
    return built


def test_the_wheel_holds_the_service_alone_with_its_license_and_pinned_dependencies(
    wheel: Path,
) -> None:
    assert wheel.name == f"rt_mp_collector-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        info = f"rt_mp_collector-{__version__}.dist-info"
        metadata = whl.read(f"{info}/METADATA").decode()
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
    assert {n.split("/")[0] for n in names} == {"collector", info}
    assert "collector/simulator/server.py" in names  # `serve --simulator` needs it installed
    with zipfile.ZipFile(wheel) as whl:  # and the example rules it serves
        assert whl.read("collector/rules.example.yaml") == EXAMPLE.read_bytes()
    assert f"{info}/licenses/LICENSE" in names
    assert "License-Expression: Apache-2.0" in metadata
    assert "[console_scripts]\ncollector = collector.cli:main" in entry_points
    pins = [
        line.strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert re.findall(r"^Requires-Dist: (.+)$", metadata, re.M) == pins


def test_the_installed_command_tells_its_version_from_anywhere(wheel: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    pip("install", "--no-deps", "--no-index", "--prefix", str(prefix), str(wheel), cwd=tmp_path)
    [site] = prefix.glob("lib/python3*/site-packages")
    done = subprocess.run(
        [str(prefix / "bin" / "collector"), "--version"],
        cwd=tmp_path,  # outside the checkout: the installed copy answers
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, f"rt-mp-collector {__version__}\n")


def test_python_m_collector_tells_the_same_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "collector", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, f"rt-mp-collector {__version__}\n")


EXAMPLE = ROOT / "rules.example.yaml"


def test_the_package_ships_the_checkouts_example_rules_unchanged() -> None:
    # The README, docs and commands name the checkout's file; an installed `serve --simulator`
    # serves the package's copy. One may not change without the other.
    assert (ROOT / "collector" / "rules.example.yaml").read_bytes() == EXAMPLE.read_bytes()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install .` run in a copy of the checkout, into a fresh virtual environment (its
    directory). No index is reachable here: the environment borrows, after its own, the suite's
    packages (pip, the pinned setuptools, the service's dependencies) through a .pth file."""
    tmp = tmp_path_factory.mktemp("installed")
    src = sources(tmp / "src")
    venv = tmp / "venv"
    done = subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [site] = venv.glob("lib/python3*/site-packages")
    (site / "suite.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = str(venv / "bin" / "python")
    done = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "."],
        cwd=src,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp


def test_pip_install_leaves_nothing_in_the_source_tree(installed: Path) -> None:
    # Before, it left build/ and rt_mp_collector.egg-info beside the sources.
    assert sorted(p.name for p in (installed / "src").iterdir()) == sorted(SOURCES)


def serve(installed: Path, cwd: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """The installed `collector serve`, from a directory with no rules file in it."""
    keep = {k: v for k, v in clean_env().items() if k != "PYTHONPATH"}
    return subprocess.Popen(
        [str(installed / "venv" / "bin" / "collector"), "serve", *args],
        cwd=cwd,
        env={**keep, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_installed_serve_simulator_serves_the_example_rules_it_ships(
    installed: Path, tmp_path: Path
) -> None:
    # Before, an installed `serve --simulator` found no rules.example.yaml and suggested
    # `--rules rules.example.yaml`, a file the package did not have.
    [site] = (installed / "venv").glob("lib/python3*/site-packages")
    shipped = site / "collector" / "rules.example.yaml"
    proc = serve(installed, tmp_path, "--simulator")
    try:
        banner = read_banner(proc)
        assert f"rules:     {shipped}  (state: file:" in "\n".join(banner)
        base = banner[0].split()[1]
        dry = requests.get(f"{base}/check?dry_run=1", timeout=60)
        assert dry.status_code == 200 and len(dry.json()["rules"]) == 3
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    # Serving for real, with no rules: the suggestion names the shipped file, and the budget
    # is Mixpanel's.
    credentials = {
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME": "user",
        "MIXPANEL_SERVICE_ACCOUNT_SECRET": "secret-value-1",
        "MIXPANEL_PROJECT_ID": "7",
    }
    proc = serve(installed, tmp_path, **credentials)
    try:
        banner = read_banner(proc)
        assert f"  (no rules: add --rules {shipped} to try /check, /rules, /status)" in banner
        assert not [line for line in banner if line.startswith("budget:")]
        health = requests.get(banner[0].split()[1] + "/healthz", timeout=10).json()
        assert health["queries_left_this_hour"] == 60
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
