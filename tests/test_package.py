"""`pip install .`: a wheel of the service alone, its pinned dependencies, the `collector`
command, and the version a user can see.

The wheel is built without build isolation from a copy of the sources (the suite's environment
pins the same setuptools as pyproject.toml's build requirement; CI also runs a real
`pip install .` in a fresh environment), then installed where nothing else is, and its command
is run from outside the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from collector import __version__
from tests.helpers import ROOT

SOURCES = ("collector", "pyproject.toml", "README.md", "LICENSE", "requirements.txt")


def pip(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("package")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
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
