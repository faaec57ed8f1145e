"""A YAML file of the service's configuration (the rules file, a jobs file), read with its
mistakes located: the line and column of a syntax error, of a key given twice in one mapping,
of a byte that is not UTF-8. PyYAML's own message names "<unicode string>" and spreads over
several lines; this one names the place in the file, in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode

MERGE = "tag:yaml.org,2002:merge"


class YamlFileError(ValueError):
    """The file holds no YAML document this service can read: why, and where (1-based)."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column

    def at(self, path: str | Path) -> str:
        """The message for the file at `path`: `rules.yaml, line 4, column 4: ...`."""
        if self.line is None:
            return f"{path}: {self.reason}"
        return f"{path}, line {self.line}, column {self.column}: {self.reason}"


def read_yaml(path: str | Path) -> Any:
    """The document of a YAML file (None if it is empty). OSError if it cannot be read;
    YamlFileError if it is not UTF-8 or not valid YAML, or gives a key twice in one mapping."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _place(data, exc.start)
        raise YamlFileError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x})", line, column
        ) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no object is built
    except yaml.MarkedYAMLError as exc:
        raise _located(exc) from None
    except yaml.reader.ReaderError as exc:
        line, column = _place(text, exc.position)
        raise YamlFileError(
            f"not valid YAML: character U+{exc.character:04X} is not allowed", line, column
        ) from None
    except yaml.YAMLError as exc:  # no place known: PyYAML's text, on one line
        raise YamlFileError(f"not valid YAML: {' '.join(str(exc).split())}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe loading that refuses a key given twice in one mapping: YAML requires keys to be
    unique, and PyYAML would keep the last one without a word (`window_minutes` twice)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, MappingNode):
            first: dict[tuple[str, str], Any] = {}
            for key, _ in node.value:
                if not isinstance(key, ScalarNode) or key.tag == MERGE:
                    continue
                seen = first.setdefault((key.tag, key.value), key.start_mark)
                if seen is not key.start_mark:
                    raise ConstructorError(
                        None,
                        None,
                        f"the key {key.value!r} is given twice in one mapping (first at line "
                        f"{seen.line + 1}, column {seen.column + 1})",
                        key.start_mark,
                    )
        return super().construct_mapping(node, deep)


def _located(exc: yaml.MarkedYAMLError) -> YamlFileError:
    mark = exc.problem_mark or exc.context_mark
    reason = f"not valid YAML: {exc.problem or exc.context}"
    context = exc.context_mark
    if exc.problem and exc.context:
        reason += f" ({exc.context}"
        if context is not None and context is not mark:
            reason += f" at line {context.line + 1}, column {context.column + 1}"
        reason += ")"
    if "expected <block end>" in str(exc.problem) or "mapping values are not allowed" in str(
        exc.problem
    ):
        # PyYAML's words for a line indented more or less than its neighbours.
        reason += ": check this line's indentation against the lines above it"
    if mark is None:
        return YamlFileError(reason)
    return YamlFileError(reason, mark.line + 1, mark.column + 1)


def _place(text: str | bytes, offset: int) -> tuple[int, int]:
    """The 1-based line and column of an offset (a character's, or a byte's)."""
    newline = "\n" if isinstance(text, str) else b"\n"
    line_start = text.rfind(newline, 0, offset) + 1  # type: ignore[arg-type]
    return text.count(newline, 0, offset) + 1, offset - line_start + 1  # type: ignore[arg-type]
