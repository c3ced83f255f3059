"""Finding the files to lint: folders walked in sorted order, ``exclude`` patterns (matched
below each linted root), ``.gitignore`` files (nested ones too, with negation) and
``.git/info/exclude`` honoured, as ruff does; each real file listed once."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _read_patterns(path: Path) -> list[_Pattern]:
    try:
        if not path.is_file():
            return []
        return parse_gitignore(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return []


def _is_within(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def discover(paths: list[str], config: LintConfig, with_notes: bool = False) -> Any:
    """Every lintable file under ``paths``, sorted, each real file once.

    Files named explicitly are linted even if excluded (as with ruff); folders are walked.
    A file reachable by several paths (a symlink inside the tree, ``lint . $PWD/a.py``) is
    listed once, by its own path rather than a link's; a file symlink whose target lies outside
    the roots is skipped with a note; symlinked folders are not followed.

    Args:
        paths: files and folders.
        config: the settings (excludes, ``respect-gitignore``).
        with_notes: also return notes about what was skipped.

    Returns:
        The paths, or ``(paths, notes)`` with ``with_notes``.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.py").write_text("x = 1\\n")
    >>> (d / "b.py").symlink_to(d / "a.py")
    >>> [pathlib.Path(p).name for p in discover([str(d), str(d / "a.py")], LintConfig())]
    ['a.py']
    """
    roots = [os.path.realpath(p) for p in paths]
    found: dict[str, str] = {}  # real path -> the path shown
    notes: list[str] = []

    def add(shown: str) -> None:
        real = os.path.realpath(shown)
        old = found.get(real)
        if old is None or (os.path.islink(old) and not os.path.islink(shown)):
            found[real] = shown

    for p in paths:
        path = Path(p)
        if not path.is_dir():
            if path.is_symlink() and not path.exists():
                notes.append(f"skipped {p}: a broken symbolic link")
                continue
            add(str(path))  # a missing path becomes a TE099 finding, never a silent skip
            continue
        for f in _walk(path, config, roots, notes):
            add(f)
    out = list(found.values())
    return (out, notes) if with_notes else out


def _walk(top: Path, config: LintConfig, roots: list[str], notes: list[str]) -> list[str]:
    ignores: list[tuple[Path, list[_Pattern]]] = []
    rtop = Path(os.path.realpath(top))
    if config.respect_gitignore:
        root = _git_root(rtop)
        if root is not None:
            ignores.append((root, _read_patterns(root / ".git" / "info" / "exclude")))
            for folder in [root, *reversed([f for f in rtop.parents if root in f.parents])]:
                if folder != rtop:
                    ignores.append((folder, _read_patterns(folder / ".gitignore")))
    stack: list[tuple[Path, Path, list[tuple[Path, list[_Pattern]]]]] = [(top, rtop, ignores)]
    results: list[str] = []
    while stack:
        folder, real, inherited = stack.pop()
        patterns = list(inherited)
        if config.respect_gitignore:
            own = _read_patterns(folder / ".gitignore")
            if own:
                patterns.append((real, own))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            notes.append(f"cannot read folder {folder}: {exc.strerror or exc}")
            continue
        subdirs: list[tuple[Path, Path]] = []
        for entry in entries:
            child = Path(entry.path)
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if config.excluded(str(child), str(top)) or _git_ignored(patterns, real / entry.name, is_dir):
                continue
            if is_dir:
                subdirs.append((child, real / entry.name))
            elif entry.name.endswith(SUFFIXES):
                if is_link:
                    target = os.path.realpath(child)
                    if os.path.isdir(target):
                        continue  # symlinked folders are not followed
                    if not os.path.exists(target):
                        notes.append(f"skipped {child}: a broken symbolic link")
                        continue
                    if not _is_within(target, roots):
                        notes.append(f"skipped {child}: a symbolic link to {target}, outside the linted paths")
                        continue
                results.append(str(child))
        for d in reversed(subdirs):
            stack.append((d[0], d[1], patterns))
    return sorted(results)


def _git_ignored(patterns: list[tuple[Path, list[_Pattern]]], child: Path, is_dir: bool) -> bool:
    verdict = False
    for base, pats in patterns:
        try:
            rel = child.relative_to(base).as_posix()
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
