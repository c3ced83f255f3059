"""The package layout: no import cycles (module level, inside functions and under
``TYPE_CHECKING`` alike), modules of at most 400 lines, and the public names declared once."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import traineval as te

SRC = Path(te.__file__).parent
MAX_LINES = 400
# pure data: one Rule row per code, or the table of ops
DATA_MODULES = {"traineval.catalog.te0xx", "traineval.catalog.te1xx", "traineval.catalog.te2xx"}


# Layout debts still being paid (issue 11). Each entry must go when its module is split; the
# tests fail as well when an entry is no longer needed, so the lists can only shrink.
KNOWN_CYCLES: list[list[str]] = []
KNOWN_OVERSIZE: set[str] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """Every traineval module that ``name`` imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith("traineval") and target != name and target != "traineval":
                out.add(target)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read() -> None:
    assert "traineval.core.modes" in GRAPH["traineval.core.policies"]
    assert "traineval.ops" in GRAPH["traineval.core.sensitivity"]


def test_no_import_cycles() -> None:
    assert _cycles() == KNOWN_CYCLES


def test_no_module_over_400_lines() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    over = {name for name, n in sizes.items() if n > MAX_LINES and name not in DATA_MODULES}
    assert over == KNOWN_OVERSIZE


def test_the_linter_never_imports_torch_modules() -> None:
    lint = {name for name in GRAPH if name.startswith("traineval.lint")}
    reachable, todo = set(), list(lint)
    while todo:
        name = todo.pop()
        if name not in reachable:
            reachable.add(name)
            todo.extend(GRAPH[name])
    assert {name for name in reachable if _imports_torch_at_module_level(MODULES[name])} == set()


def _imports_torch_at_module_level(path: Path) -> bool:
    """Whether importing the module imports torch (imports inside functions run only when called)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        if any(n == "torch" or n.startswith("torch.") for n in names):
            return True
    return False


def test_public_names_are_declared_once_and_all_load() -> None:
    stub = (SRC / "__init__.pyi").read_text(encoding="utf-8")
    code = (
        "import traineval as te\n"
        "missing = [n for n in te.__all__ if getattr(te, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert te.guard.__name__ == 'guard' and callable(te.guard)\n"  # not shadowed by a subpackage
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert "__all__ = [" not in (SRC / "__init__.py").read_text(encoding="utf-8")
    for name in te.__all__:
        if name != "__version__":
            assert stub.count(f"import {name} as {name}\n") == 1, name


def test_the_api_page_documents_every_public_name() -> None:
    """docs/api.md is not a fourth declaration: it must cover te.__all__ exactly."""
    import re
    import types

    import traineval as te

    page = (SRC.parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    listed = {m for block in re.findall(r"members: \[([^\]]*)\]", page) for m in re.split(r",\s*", block)}
    whole = set(re.findall(r"^::: (\S+)\s*$(?!\n    options)", page, flags=re.M))
    documented = set(listed)
    for module in whole:
        mod = __import__(module, fromlist=["_"])
        documented |= {n for n in dir(mod) if not n.startswith("_")}
    public = {n for n in te.__all__ if not isinstance(getattr(te, n), types.ModuleType)}
    public -= {"__version__"}
    assert public - documented == set()
    assert listed - public == set()
