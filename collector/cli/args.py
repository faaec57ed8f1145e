"""Argument types shared by the commands: a bad value is a usage line, never a traceback."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def command(
    sub: argparse._SubParsersAction,
    name: str,
    summary: str,
    doc: str | None,
    run: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """A subcommand: `summary` in the command list, its module's docstring as its --help,
    `run` what it does (its exit status)."""
    parser = sub.add_parser(
        name, help=summary, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.set_defaults(run=run)
    return parser


def whole(text: str) -> int:
    """Any whole number."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive(text: str) -> int:
    """A whole number of at least 1."""
    value = whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def port(text: str) -> int:
    """A TCP port; 0 asks for a free one."""
    value = whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (0 to 65535; 0: a free one)")
    return value


def within(low: int, high: int) -> Callable[[str], int]:
    """A whole number from `low` to `high`."""

    def parse(text: str) -> int:
        value = whole(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not within {low} to {high}")
        return value

    return parse
