"""Settings of ``traineval lint``: ``[tool.traineval]`` (or ``[tool.traineval.lint]``) in
``pyproject.toml``, overridden by the command line — the same keys and semantics as ruff.

.. code-block:: toml

    [tool.traineval]
    extend-select = ["TE081"]
    ignore = ["TE006"]
    extend-exclude = ["legacy/"]
    per-file-ignores = { "tests/*" = ["TE007"] }
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from traineval.errors import TraineValValueError

DEFAULT_EXCLUDE = (
    ".git", ".hg", ".svn", ".bzr", ".venv", "venv", ".tox", ".nox", "__pycache__", "build", "dist",
    "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints", ".eggs", "*.egg-info",
    "site-packages", "__pypackages__", "_build", "buck-out",
)
_KEYS = {"select", "extend-select", "ignore", "exclude", "extend-exclude", "respect-gitignore", "per-file-ignores",
         "jobs", "format", "max-file-size"}
FORMATS = ("text", "json", "json-lines", "sarif", "github", "gitlab", "junit", "grouped")
DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024


@dataclass(frozen=True)
class LintConfig:
    """Which rules run and which files are read.

    >>> cfg = LintConfig(ignore=("TE006",))
    >>> cfg.enabled("TE001"), cfg.enabled("TE006"), cfg.enabled("TE081")
    (True, False, False)
    >>> LintConfig(extend_select=("TE08",)).enabled("TE081")
    True
    """

    select: tuple[str, ...] = ()
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    extend_exclude: tuple[str, ...] = ()
    respect_gitignore: bool = True
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    jobs: int | None = None
    root: str = "."
    format: str | None = None
    max_file_size: int | None = DEFAULT_MAX_FILE_SIZE  # bytes; 0 or None: no limit

    def enabled(self, code: str) -> bool:
        """Whether ``code`` is reported under these settings."""
        from traineval.catalog import get_rule

        rule = get_rule(code)

        def matches(selectors: tuple[str, ...], strict: bool) -> int:
            best = 0
            for s in selectors:
                s = s.upper()
                if s == "ALL" or code.startswith(s):
                    if strict and not rule.default_enabled and (s == "ALL" or len(s) < 4):
                        continue  # opinionated rules must be named specifically (TE08, TE081)
                    best = max(best, len(s) if s != "ALL" else 1)
            return best

        # the most specific selector wins; the default selection is as broad as ALL, and a tie
        # goes to ``ignore`` (so ``ignore = ["ALL"]`` turns every default rule off)
        chosen = matches(self.select, True) if self.select else (1 if rule.default_enabled else 0)
        chosen = max(chosen, matches(self.extend_select, True))
        return chosen > 0 and chosen > matches(self.ignore, False)

    def ignored_for(self, path: str, code: str) -> bool:
        """Whether ``per-file-ignores`` turn ``code`` off for ``path``."""
        rel = _relative(path, self.root)
        for pattern, codes in self.per_file_ignores.items():
            matched = fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(Path(rel).name, pattern)
            if matched and any(c.upper() == "ALL" or code.startswith(c.upper()) for c in codes):
                return True
        return False

    def excluded(self, path: str, top: str | None = None) -> bool:
        """Whether a path matches ``exclude`` / ``extend-exclude``.

        As in ruff, only the part of the path below the linted root ``top`` counts: a project
        inside a folder named ``build`` is linted, a ``build`` folder inside it is not. A pattern
        with a ``/`` is matched against the path relative to the project root.

        >>> LintConfig().excluded("/home/me/build/proj/a.py", top="/home/me/build/proj")
        False
        >>> LintConfig().excluded("/home/me/build/proj/build/a.py", top="/home/me/build/proj")
        True
        """
        rel = _relative(path, self.root)
        below = _relative(path, top) if top is not None else rel
        if below.startswith("/") or below.startswith("../"):
            below = Path(path).name
        parts = Path(below).parts
        for pattern in (*self.exclude, *self.extend_exclude):
            p = pattern.rstrip("/")
            if "/" in p:
                if fnmatch.fnmatch(rel, p.lstrip("/")) or fnmatch.fnmatch(below, p.lstrip("/")):
                    return True
            elif any(fnmatch.fnmatch(part, p) for part in parts):
                return True
        return False


def _relative(path: str, root: str) -> str:
    """``path`` relative to ``root``, posix; the last component is not resolved (a symlink
    keeps its own name). Falls back to ``path`` itself outside ``root``."""
    import os

    p = Path(path)
    real = Path(os.path.realpath(p.parent)) / p.name if p.name not in ("", ".", "..") else Path(os.path.realpath(p))
    try:
        return real.relative_to(os.path.realpath(root)).as_posix()
    except ValueError:
        return p.as_posix()


def _toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise TraineValValueError(
                f"reading {path} needs Python 3.11+ or the 'tomli' package (pip install tomli)"
            ) from None
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except UnicodeDecodeError:
        raise TraineValValueError(f"cannot read {path}: not UTF-8 text") from None
    except (OSError, tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
        raise TraineValValueError(f"cannot read {path}: {exc}") from None


def find_pyproject(start: str) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start``."""
    here = Path(start).resolve()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _codes(value: Any, key: str, path: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TraineValValueError(f"{path}: [tool.traineval] {key} must be a list of strings, got {value!r}")
    if any(not v.strip() for v in value):
        raise TraineValValueError(f"{path}: [tool.traineval] {key} holds an empty string")
    return tuple(v.strip() for v in value)


def _int(value: Any, key: str, path: Path, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TraineValValueError(f"{path}: [tool.traineval] {key} must be an integer, got {value!r}")
    if value < low:
        raise TraineValValueError(f"{path}: [tool.traineval] {key} must be at least {low}, got {value}")
    return value


def load_config(path: Path | None) -> LintConfig:
    """Read ``[tool.traineval]`` from a ``pyproject.toml`` (defaults when absent)."""
    if path is None:
        return LintConfig()
    tool = _toml(path).get("tool", {})
    if not isinstance(tool, dict):
        raise TraineValValueError(f"{path}: [tool] must be a table")
    data = tool.get("traineval", {})
    if not isinstance(data, dict):
        raise TraineValValueError(f"{path}: tool.traineval must be a table, got {type(data).__name__}")
    if "lint" in data:
        if not isinstance(data["lint"], dict):
            raise TraineValValueError(f"{path}: tool.traineval.lint must be a table")
        data = {**{k: v for k, v in data.items() if k != "lint"}, **data["lint"]}
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise TraineValValueError(
            f"{path}: unknown key(s) in [tool.traineval]: {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})"
        )
    cfg = LintConfig(root=str(path.parent))
    changes: dict[str, Any] = {}
    for key in ("select", "extend-select", "ignore", "exclude", "extend-exclude"):
        if key in data:
            changes[key.replace("-", "_")] = _codes(data[key], key, path)
    if "respect-gitignore" in data:
        if not isinstance(data["respect-gitignore"], bool):
            raise TraineValValueError(
                f"{path}: [tool.traineval] respect-gitignore must be true or false, got {data['respect-gitignore']!r}"
            )
        changes["respect_gitignore"] = data["respect-gitignore"]
    if "per-file-ignores" in data:
        pfi = data["per-file-ignores"]
        if not isinstance(pfi, dict):
            raise TraineValValueError(f"{path}: per-file-ignores must be a table of pattern = [codes]")
        changes["per_file_ignores"] = {k: _codes(v, "per-file-ignores", path) for k, v in pfi.items()}
    if "jobs" in data:
        changes["jobs"] = _int(data["jobs"], "jobs", path, 1)
    if "max-file-size" in data:
        changes["max_file_size"] = _int(data["max-file-size"], "max-file-size", path, 0) or None
    if "format" in data:
        if data["format"] not in FORMATS:
            raise TraineValValueError(
                f"{path}: [tool.traineval] format must be one of {', '.join(FORMATS)}, got {data['format']!r}"
            )
        changes["format"] = data["format"]
    cfg = replace(cfg, **changes)
    for code in (*cfg.select, *cfg.extend_select, *cfg.ignore, *(c for v in cfg.per_file_ignores.values() for c in v)):
        validate_selector(code, str(path))
    return cfg


def validate_selector(selector: str, where: str = "command line") -> None:
    """Reject a selector that names no rule (``TE0O1``) with a one-line error."""
    from traineval.catalog import all_rules

    s = selector.strip().upper()
    if not s:
        raise TraineValValueError(f"{where}: an empty selector selects no lint rule")
    if s == "ALL" or any(r.code.startswith(s) for r in all_rules() if r.code.startswith("TE0")):
        return
    raise TraineValValueError(f"{where}: {selector!r} selects no lint rule (lint codes are TE001–TE099)")
