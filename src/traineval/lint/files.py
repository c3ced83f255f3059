"""Finding the files to lint: folders walked in sorted order, ``exclude`` patterns and
``.gitignore`` files honoured (nested ones too, with negation), as ruff does."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from traineval.lint.config import LintConfig

SUFFIXES = (".py", ".pyi", ".ipynb")


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _glob_to_regex(glob: str) -> str:
    out, i = "", 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if glob.startswith("/**", i) and i + 3 == len(glob):
            out += "/.*"
            i += 3
            continue
        if glob.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = glob.find("]", i + 1)
            if j == -1:
                out += re.escape(c)
            else:
                body = glob[i + 1:j].replace("\\", "\\\\")
                out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
                i = j
        elif c == "\\" and i + 1 < len(glob):
            i += 1
            out += re.escape(glob[i])
        else:
            out += re.escape(c)
        i += 1
    return out


def parse_gitignore(text: str) -> list[_Pattern]:
    """The patterns of one ``.gitignore`` file.

    >>> pats = parse_gitignore("build/\\n*.py\\n!keep.py\\n")
    >>> ignored(pats, "a/x.py", False), ignored(pats, "keep.py", False), ignored(pats, "build", True)
    (True, False, True)
    """
    out: list[_Pattern] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        if line.startswith("\\"):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        regex = ("^" if anchored else "^(?:.*/)?") + _glob_to_regex(line) + "$"
        try:
            out.append(_Pattern(re.compile(regex), negate, dir_only))
        except re.error:
            continue
    return out


def ignored(patterns: list[_Pattern], rel: str, is_dir: bool) -> bool | None:
    """Whether the last matching pattern ignores ``rel`` (``None``: no pattern matched)."""
    verdict: bool | None = None
    for p in patterns:
        if p.dir_only and not is_dir:
            continue
        if p.regex.match(rel):
            verdict = not p.negate
    return verdict


def _git_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def discover(paths: list[str], config: LintConfig) -> list[str]:
    """Every lintable file under ``paths``, sorted, without duplicates.

    Files named explicitly are linted even if excluded (as with ruff); folders are walked.
    """
    found: dict[str, None] = {}
    for p in paths:
        path = Path(p)
        if path.is_file() or not path.exists():
            found[str(path)] = None  # a missing path becomes a TE099 finding, never a silent skip
            continue
        _walk(path, config, found)
    return list(found)


def _walk(top: Path, config: LintConfig, found: dict[str, None]) -> None:
    stack: list[tuple[Path, list[tuple[Path, list[_Pattern]]]]] = []
    ignores: list[tuple[Path, list[_Pattern]]] = []
    if config.respect_gitignore:
        root = _git_root(top.resolve())
        if root is not None:
            rtop = top.resolve()
            for folder in [root, *reversed([f for f in rtop.parents if root in f.parents])]:
                gi = folder / ".gitignore"
                if gi.is_file() and folder != rtop:
                    ignores.append((folder, parse_gitignore(gi.read_text(errors="replace"))))
    stack.append((top, ignores))
    results: list[str] = []
    while stack:
        folder, inherited = stack.pop()
        patterns = list(inherited)
        gi = folder / ".gitignore"
        if config.respect_gitignore and gi.is_file():
            with contextlib.suppress(OSError):
                patterns.append((folder.resolve(), parse_gitignore(gi.read_text(errors="replace"))))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        subdirs: list[Path] = []
        for entry in entries:
            child = Path(entry.path)
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            if config.excluded(str(child)) or _git_ignored(patterns, child, is_dir):
                continue
            if is_dir:
                if not entry.is_symlink():
                    subdirs.append(child)
            elif entry.name.endswith(SUFFIXES):
                results.append(str(child))
        for d in reversed(subdirs):
            stack.append((d, patterns))
    for r in sorted(results):
        found[r] = None


def _git_ignored(patterns: list[tuple[Path, list[_Pattern]]], child: Path, is_dir: bool) -> bool:
    verdict = False
    resolved = child.resolve() if patterns else child
    for base, pats in patterns:
        try:
            rel = resolved.relative_to(base).as_posix()
        except ValueError:
            continue
        v = ignored(pats, rel, is_dir)
        if v is not None:
            verdict = v
    return verdict


def module_name(path: str) -> tuple[str, str]:
    """``(module, package)`` of a file, from the ``__init__.py`` files above it."""
    p = Path(path).resolve()
    parts = [p.stem] if p.stem != "__init__" else []
    folder = p.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    module = ".".join(parts) or p.parent.name
    package = module if p.stem == "__init__" else module.rpartition(".")[0]
    return module, package
