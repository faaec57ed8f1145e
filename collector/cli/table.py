"""Columns of the tables the commands print (the demo's)."""

from __future__ import annotations


def cell(text: str, width: int) -> str:
    """`text` in a column of `width`, cut with an ellipsis when it does not fit."""
    return (text if len(text) <= width else text[: width - 1] + "…").ljust(width)
