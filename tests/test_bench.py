"""The benchmark command itself, on a small body: it runs, prints every row, and its modes agree.

Timings are not asserted (they are for `docs/benchmarks.md`, measured on purpose); what is
asserted is that the command a reader of the README runs still works and still measures the
same stream in every mode.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# bench/ is a tool for a checkout: `gcloud builds submit` leaves it out (.gcloudignore).
pytestmark = pytest.mark.skipif(
    not (ROOT / "bench").is_dir(), reason="bench/ is not part of the build upload"
)


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_benchmark_prints_every_mode_and_the_modes_agree(tmp_path: Path) -> None:
    picture = tmp_path / "benchmarks.png"
    out = run_bench(
        "--events",
        "3000",
        "--users",
        "300",
        "--gzip",
        "--network",
        "20",
        "--repeat",
        "1",
        "--plot",
        str(picture),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| ([a-z_]+(?: \(gzip\))?) \| ([\d,]+) \|", out.stdout, re.M)
    }
    expected = {
        "baseline",
        "raw",
        "decode",
        "distinct_users",
        "events",
        "active_users",
        "check",
        "distinct_users (gzip)",
        "events (gzip)",
        "check (gzip)",
    }
    assert set(rows) == expected
    assert len(set(rows.values())) == 1 and int(rows["events"].replace(",", "")) > 2000
    assert "DISAGREE" not in out.stderr
    assert re.search(
        r"^\| 20 \| [\d,]+ / [\d,]+ \| [\d.]+ \| [\d.]+ \| [\d.]+x \|$", out.stdout, re.M
    )
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the figures, drawn


def test_the_benchmark_measures_many_event_names(tmp_path: Path) -> None:
    out = run_bench(
        "--events",
        "3000",
        "--users",
        "300",
        "--names",
        "2000",
        "--modes",
        "baseline,events,distinct_users",
        "--repeat",
        "1",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DISAGREE" not in out.stderr


def test_the_benchmark_names_what_is_wrong_with_its_options() -> None:
    out = run_bench("--modes", "events,fastest")
    assert out.returncode == 2
    assert "unknown mode(s) fastest" in out.stderr and "choose from" in out.stderr
    out = run_bench("--network", "fast", "--gzip")
    assert out.returncode == 2 and "--network takes link speeds in MB/s" in out.stderr


def test_the_reliability_run_draws_its_figures(tmp_path: Path) -> None:
    picture = tmp_path / "reliability.png"
    args = ["--chaos", "3", "--load-seconds", "0", "--shutdowns", "0", "--plot", str(picture)]
    out = subprocess.run(
        [sys.executable, "-m", "bench.reliability", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"plot: {picture}" in out.stderr and "problems: 0" in out.stdout
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_ledger_benchmark_compares_with_the_full_re_export() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.ledger",
            "--events-per-day",
            "20000",
            "--users",
            "2000",
            "--mau-days",
            "2",
            "--mau-events-per-day",
            "5000",
            "--mau-users",
            "500",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = re.findall(
        r"^\| (ledger at 23:55|full re-export at 23:55) \| ([\d,]+) \| True \| "
        r"(\d+) \| [\d,]+ \| ([\d,]+) \|",
        out.stdout,
        re.M,
    )
    (_, ledger_value, ledger_queries, ledger_bytes), (_, full_value, _, full_bytes) = rows
    assert ledger_value == full_value and ledger_queries == "1"
    assert int(ledger_bytes.replace(",", "")) * 20 < int(full_bytes.replace(",", ""))
    assert "DISAGREE" not in out.stderr


def test_the_benchmark_reads_in_the_services_chunks() -> None:
    """The raw transfer and the decode limit are only limits of the read the service does."""
    from collector.export.attempt import CHUNK_BYTES

    probe = "from bench.modes import CHUNK; print(CHUNK)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == CHUNK_BYTES
