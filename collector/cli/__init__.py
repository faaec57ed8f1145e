"""The `collector` command (also `python -m collector`): one subcommand per module here.

collector --version
collector check [--dry-run] [--rule NAME ...] [--rules FILE]
collector serve [--simulator] [--port N]
collector backfill --days N [--tasks N]
"""

from __future__ import annotations

import argparse

from collector import __version__
from collector.cli import backfill, check, serve


def build_parser() -> argparse.ArgumentParser:
    """The command line of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="collector",
        description="rt-mp-collector: honest metrics from the Mixpanel Raw Event Export API.",
    )
    parser.add_argument("--version", action="version", version=f"rt-mp-collector {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check.add_parser(sub)
    serve.add_parser(sub)
    backfill.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; its exit status."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))
