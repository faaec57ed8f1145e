"""What `gcloud builds submit` uploads: the tree minus what `.gcloudignore` leaves out.

gcloud reads `.gcloudignore` with gitignore's rules: the last pattern that matches decides, `!`
re-includes, a trailing `/` matches directories only, a pattern with a `/` before its end is
anchored at the root and one without matches at any depth, `*` and `?` stop at `/`, `**` spans
directories. A directory that is left out is not entered, so nothing inside it can be
re-included. `.gitignore` counts only through a `#!include:.gitignore` line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    negated: bool
    directories_only: bool

    def matches(self, path: str, is_dir: bool) -> bool:
        return (is_dir or not self.directories_only) and bool(self.regex.match(path))


def parse(text: str, root: Path | None = None) -> list[Pattern]:
    """The patterns of an ignore file; `#!include:FILE` lines are read from `root`."""
    patterns: list[Pattern] = []
    for raw in text.splitlines():
        if raw.startswith("#!include:") and root is not None:
            patterns += parse((root / raw[len("#!include:") :].strip()).read_text(), root)
            continue
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line[1:] if negated else line
        if line.startswith("\\"):  # "\#name" and "\!name" name files that start with # or !
            line = line[1:]
        directories_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        body = _glob(line.lstrip("/"))
        regex = re.compile(("^" if anchored else "^(?:.*/)?") + body + "$")
        patterns.append(Pattern(regex, negated, directories_only))
    return patterns


def _glob(glob: str) -> str:
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and (end := glob.find("]", i + 2)) != -1:
            inside = glob[i + 1 : end]
            out.append("[" + ("^" + inside[1:] if inside.startswith("!") else inside) + "]")
            i = end + 1
        elif glob[i] == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def included(patterns: list[Pattern], path: str, is_dir: bool) -> bool:
    """Whether `path` (relative, with `/`) is kept, its parent directories being kept."""
    keep = True
    for pattern in patterns:
        if pattern.matches(path, is_dir):
            keep = pattern.negated
    return keep


def _patterns(root: Path) -> list[Pattern]:
    ignore = root / ".gcloudignore"
    return parse(ignore.read_text(), root) if ignore.exists() else []


def uploaded(root: Path, path: str) -> bool:
    """Whether the file `path` (relative, with `/`) would be uploaded, existing or not."""
    patterns = _patterns(root)
    parts = path.split("/")
    parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
    return all(included(patterns, d, True) for d in parents) and included(patterns, path, False)


def upload_set(root: Path) -> list[str]:
    """Every file under `root` that `gcloud builds submit` would upload, sorted."""
    patterns = _patterns(root)
    files: list[str] = []
    for here, dirs, names in os.walk(root):
        rel = Path(here).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        dirs[:] = sorted(d for d in dirs if included(patterns, prefix + d, True))
        files += [prefix + n for n in names if included(patterns, prefix + n, False)]
    return sorted(files)
