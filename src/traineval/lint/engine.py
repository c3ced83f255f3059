"""Running the linter: per-file pass (in parallel for large trees), project index, flow
rules, suppressions, selection — with output in a deterministic order."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from traineval.catalog import make
from traineval.lint import ir
from traineval.lint.config import LintConfig
from traineval.lint.files import discover, module_name
from traineval.lint.index import ProjectIndex
from traineval.lint.noqa import Suppressions, parse_suppressions
from traineval.lint.report.finding import Finding
from traineval.lint.rules.flow import run_flow_rules
from traineval.lint.source import CellMap, read_source

PARALLEL_THRESHOLD = 48  # files; below this a process pool costs more than it saves


@dataclass
class FileResult:
    """What the per-file pass returns for one file (picklable)."""

    path: str
    facts: ir.FileFacts | None
    error: tuple[str, int, int] | None
    suppressions: Suppressions
    cells: CellMap | None
    notebook: bool = False


@dataclass
class LintResult:
    """The outcome of a run: sorted findings, the fixes they carry, how many files were read."""

    findings: list[Finding] = field(default_factory=list)
    edits: dict[str, list[ir.Edit]] = field(default_factory=dict)
    files: int = 0


def analyze_file(path: str, data: bytes | None = None) -> FileResult:
    """The per-file pass over one file; never raises for bad input."""
    src = read_source(path, data)
    supp = parse_suppressions(src.text) if src.text else Suppressions()
    result = FileResult(path, None, src.error, supp, src.cells, path.endswith(".ipynb"))
    if src.tree is None:
        return result
    from traineval.lint.visitor import FileVisitor

    module, package = module_name(path) if data is None else (os.path.splitext(os.path.basename(path))[0], "")
    try:
        result.facts = FileVisitor(src, module, package).run()
    except RecursionError:
        result.error = ("too deeply nested for the linter to analyse", 1, 0)
    except Exception as exc:  # a linter bug must not stop the run: report it on the file
        result.error = (f"internal error in traineval lint ({type(exc).__name__}: {exc}); please report it", 1, 0)
    return result


def _analyze_all(paths: list[str], jobs: int | None) -> list[FileResult]:
    workers = jobs if jobs is not None else min(os.cpu_count() or 1, 8)
    if workers <= 1 or len(paths) < PARALLEL_THRESHOLD:
        return [analyze_file(p) for p in paths]
    chunk = max(1, len(paths) // (workers * 8))
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(analyze_file, paths, chunksize=chunk))
    except (OSError, RuntimeError):  # no multiprocessing here (sandbox, frozen app): serial
        return [analyze_file(p) for p in paths]


def lint_paths(paths: list[str], config: LintConfig | None = None) -> LintResult:
    """Lint files and folders; return every finding enabled by ``config``, sorted.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "m.py").write_text("model.eval\\n")
    >>> [f.code for f in lint_paths([str(folder)]).findings]
    ['TE001']
    """
    config = config or LintConfig()
    files = discover(paths, config)
    results = _analyze_all(files, config.jobs)
    return assemble(results, config)


def lint_source(source: str, filename: str = "<string>.py", config: LintConfig | None = None) -> list[Finding]:
    """Lint one piece of source text (no files read); the project is this text alone.

    >>> [f.code for f in lint_source("import torch.nn.functional as F\\nF.dropout(x, 0.5, True)\\n")]
    ['TE002']
    """
    result = analyze_file(filename, source.encode("utf-8"))
    return assemble([result], config or LintConfig()).findings


def assemble(results: list[FileResult], config: LintConfig) -> LintResult:
    index = ProjectIndex([r.facts for r in results if r.facts is not None])
    flow: dict[str, list[ir.Hit]] = {}
    for path, hit in run_flow_rules(index):
        flow.setdefault(path, []).append(hit)
    out = LintResult(files=len(results))
    for r in results:
        hits = list(r.facts.hits) if r.facts else []
        hits += flow.get(r.path, [])
        if r.error:
            msg, line, col = r.error
            hits.append(ir.Hit("TE099", ir.Span(line, col, line, col), {"error": msg}))
        for hit in hits:
            if not config.enabled(hit.code) or config.ignored_for(r.path, hit.code):
                continue
            if hit.needs and not all(_confirmed(index, need) for need in hit.needs):
                continue
            if hit.code != "TE099" and r.suppressions.hides(hit.code, hit.span.line):
                continue
            out.findings.append(_finding(r, hit))
            if hit.edit is not None and not r.notebook:
                out.edits.setdefault(r.path, []).append(hit.edit)
        if config.enabled("TE090"):
            for hit in _unused_noqa(r):
                out.findings.append(_finding(r, hit))
                if hit.edit is not None and not r.notebook:
                    out.edits.setdefault(r.path, []).append(hit.edit)
    out.findings.sort(key=Finding.sort_key)
    return out


def _confirmed(index: ProjectIndex, need: tuple[str, str]) -> bool:
    kind, ref = need
    if kind == "module_class":
        return index.is_module_class(ref)
    return False


def _finding(r: FileResult, hit: ir.Hit) -> Finding:
    d = make(hit.code, **hit.values)
    line, end_line, cell = hit.span.line, hit.span.end_line, None
    if r.cells is not None and r.cells.starts:
        cell, line = r.cells.locate(hit.span.line)
        end_line = line + (hit.span.end_line - hit.span.line)
    from dataclasses import replace

    where = f"{r.path}:{'' if cell is None else f'cell {cell}:'}{line}:{hit.span.col + 1}"
    d = replace(d, where=where)
    return Finding(d, path=r.path, line=line, col=hit.span.col + 1, end_line=end_line, end_col=hit.span.end_col + 1,
                   cell=cell, fixable=hit.edit is not None and not r.notebook)


def _unused_noqa(r: FileResult) -> list[ir.Hit]:
    out = []
    for d in r.suppressions.lines.values():
        unused = [c for c in d.codes if c.startswith("TE0") and c not in d.used]
        if not unused:
            continue
        kept = [c for c in d.codes if c not in unused]
        text = f"# noqa: {', '.join(kept)}" if kept else ""
        span = ir.Span(d.line, d.col if kept else d.ws_col, d.line, d.end_col)
        out.append(ir.Hit("TE090", span, {"codes": ", ".join(unused)}, edit=ir.Edit(span, text)))
    return out
