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
         "jobs", "format"}


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

        chosen = matches(self.select, True) if self.select else (2 if rule.default_enabled else 0)
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

    def excluded(self, path: str) -> bool:
        """Whether a path matches ``exclude`` / ``extend-exclude`` (by any component or the relative path)."""
        rel = _relative(path, self.root)
        parts = Path(rel).parts
        for pattern in (*self.exclude, *self.extend_exclude):
            p = pattern.rstrip("/")
            if fnmatch.fnmatch(rel, p) or any(fnmatch.fnmatch(part, p) for part in parts):
                return True
        return False


def _relative(path: str, root: str) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise TraineValValueError(
                f"reading {path} needs Python 3.11+ or the 'tomli' package (pip install tomli)"
            ) from None
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
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
    return tuple(v.strip() for v in value)


def load_config(path: Path | None) -> LintConfig:
    """Read ``[tool.traineval]`` from a ``pyproject.toml`` (defaults when absent)."""
    if path is None:
        return LintConfig()
    data = _toml(path).get("tool", {}).get("traineval", {})
    if isinstance(data.get("lint"), dict):
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
        changes["respect_gitignore"] = bool(data["respect-gitignore"])
    if "per-file-ignores" in data:
        pfi = data["per-file-ignores"]
        if not isinstance(pfi, dict):
            raise TraineValValueError(f"{path}: per-file-ignores must be a table of pattern = [codes]")
        changes["per_file_ignores"] = {k: _codes(v, "per-file-ignores", path) for k, v in pfi.items()}
    if "jobs" in data:
        changes["jobs"] = int(data["jobs"])
    if "format" in data:
        changes["format"] = str(data["format"])
    cfg = replace(cfg, **changes)
    for code in (*cfg.select, *cfg.extend_select, *cfg.ignore):
        validate_selector(code, str(path))
    return cfg


def validate_selector(selector: str, where: str = "command line") -> None:
    """Reject a selector that names no rule (``TE0O1``) with a one-line error."""
    from traineval.catalog import all_rules

    s = selector.upper()
    if s == "ALL" or any(r.code.startswith(s) for r in all_rules() if r.code.startswith("TE0")):
        return
    raise TraineValValueError(f"{where}: {selector!r} selects no lint rule (lint codes are TE001–TE099)")
