"""Running the linter: per-file pass (in parallel for large trees), project index, flow
rules, suppressions, selection — with output in a deterministic order."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

from traineval.catalog import make
from traineval.lint import ir
from traineval.lint.config import LintConfig
from traineval.lint.files import discover, module_name
from traineval.lint.index import ProjectIndex
from traineval.lint.lines import CellMap
from traineval.lint.noqa import Suppressions, parse_suppressions
from traineval.lint.report.finding import Finding
from traineval.lint.rules.flow import run_flow_rules
from traineval.lint.source import read_source

PARALLEL_THRESHOLD = 48  # files; below this a process pool costs more than it saves


@dataclass(frozen=True)
class Fix:
    """An autofix with the finding it removes: ``code`` found at ``(line, col)`` (1-based line,
    0-based character column), repaired by ``edit``."""

    code: str
    line: int
    col: int
    edit: ir.Edit


@dataclass
class FileResult:
    """What the per-file pass returns for one file (picklable)."""

    path: str
    facts: ir.FileFacts | None
    error: tuple[str, int, int] | None
    suppressions: Suppressions
    cells: CellMap | None
    notebook: bool = False
    skipped: str | None = None  # not read at all: a special file, over the size limit
    digest: str = ""  # of the bytes analysed: --fix refuses a file changed since
    internal: bool = False  # the linter itself failed on this file (a bug: exit code 2)


@dataclass
class LintResult:
    """The outcome of a run: sorted findings, the fixes they carry, how many files were read,
    and notes (files skipped, folders that could not be read)."""

    findings: list[Finding] = field(default_factory=list)
    fixes: dict[str, list[Fix]] = field(default_factory=dict)
    files: int = 0
    notes: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    internal: list[str] = field(default_factory=list)  # files the linter failed on (its own bug)

    @property
    def edits(self) -> dict[str, list[ir.Edit]]:
        """The fixes' edits, per file."""
        return {p: [f.edit for f in fs] for p, fs in self.fixes.items()}


def digest(data: bytes) -> str:
    """The fingerprint of a file's bytes that --fix compares before writing."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def analyze_file(path: str, data: bytes | None = None, max_bytes: int | None = None,
                 module: tuple[str, str] | None = None) -> FileResult:
    """The per-file pass over one file; never raises for bad input nor for a linter bug."""
    try:
        return _analyze(path, data, max_bytes, module)
    except Exception as exc:  # a linter bug must not stop the run: report it on the file
        msg = f"internal error in traineval lint ({type(exc).__name__}: {exc}); please report it"
        return FileResult(path, None, (msg, 1, 0), Suppressions(), None, path.endswith(".ipynb"), internal=True)


def _analyze(path: str, data: bytes | None, max_bytes: int | None, module: tuple[str, str] | None) -> FileResult:
    from traineval.lint.source import DEFAULT_MAX_BYTES

    src = read_source(path, data, DEFAULT_MAX_BYTES if max_bytes is None else max_bytes or None)
    result = FileResult(path, None, src.error, Suppressions(), src.cells, path.endswith(".ipynb"),
                        skipped=src.skipped, digest=src.digest)
    if src.skipped is not None:
        return result
    result.suppressions = parse_suppressions(src.text) if src.text else Suppressions()
    if src.tree is None:
        return result
    from traineval.lint.visitor import FileVisitor

    if module is None:
        module = module_name(path) if data is None else (os.path.splitext(os.path.basename(path))[0], "")
    try:
        result.facts = FileVisitor(src, *module).run()
    except RecursionError:
        result.error = ("too deeply nested for the linter to analyse", 1, 0)
    return result


def _one(args: tuple[str, int | None]) -> FileResult:
    return analyze_file(args[0], max_bytes=args[1])


def _analyze_all(paths: list[str], jobs: int | None, max_bytes: int | None) -> list[FileResult]:
    cpus = os.cpu_count() or 1
    workers = min(jobs if jobs is not None else min(cpus, 8), cpus)
    work = [(p, max_bytes) for p in paths]
    if workers <= 1 or len(paths) < PARALLEL_THRESHOLD:
        return [_one(w) for w in work]
    chunk = max(1, len(paths) // (workers * 8))
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(_one, work, chunksize=chunk))
    except (OSError, RuntimeError):  # no multiprocessing here (sandbox, frozen app): serial
        return [_one(w) for w in work]


def lint_paths(paths: list[str], config: LintConfig | None = None) -> LintResult:
    """Lint files and folders; return every finding enabled by ``config``, sorted.

    Args:
        paths: files and folders (folders are walked; excludes and ``.gitignore`` apply).
        config: the settings (defaults: :class:`LintConfig`).

    Returns:
        A :class:`LintResult`: findings, fixes, files read, notes on what was skipped.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "m.py").write_text("model.eval\\n")
    >>> [f.code for f in lint_paths([str(folder)]).findings]
    ['TE001']
    """
    config = config or LintConfig()
    files, notes = discover(paths, config, with_notes=True)
    results = _analyze_all(files, config.jobs, config.max_file_size)
    out = assemble(results, config)
    out.notes = notes + out.notes
    return out


def lint_source(source: str, filename: str = "<string>.py", config: LintConfig | None = None) -> list[Finding]:
    """Lint one piece of source text (no files read); the project is this text alone.

    >>> [f.code for f in lint_source("import torch.nn.functional as F\\nF.dropout(x, 0.5, True)\\n")]
    ['TE002']
    """
    result = analyze_file(filename, source.encode("utf-8", errors="surrogatepass"))
    return assemble([result], config or LintConfig()).findings


def assemble(results: list[FileResult], config: LintConfig) -> LintResult:
    """Project-wide pass over per-file results: flow rules, suppressions, selection, sorting."""
    index = ProjectIndex([r.facts for r in results if r.facts is not None])
    flow: dict[str, list[ir.Hit]] = {}
    for path, hit in run_flow_rules(index):
        flow.setdefault(path, []).append(hit)
    out = LintResult(files=sum(r.skipped is None for r in results))
    for r in results:
        if r.skipped is not None:
            out.notes.append(f"skipped {r.path}: {r.skipped}")
            continue
        out.digests[r.path] = r.digest
        if r.internal:
            out.internal.append(r.path)
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
            _add(out, r, hit)
        if config.enabled("TE090") and not config.ignored_for(r.path, "TE090"):
            for hit in _unused_noqa(r):
                _add(out, r, hit)
    out.findings.sort(key=Finding.sort_key)
    return out


def _add(out: LintResult, r: FileResult, hit: ir.Hit) -> None:
    fixable = hit.edit is not None and not r.notebook
    out.findings.append(_finding(r, hit, fixable))
    if fixable and hit.edit is not None:
        out.fixes.setdefault(r.path, []).append(Fix(hit.code, hit.span.line, hit.span.col, hit.edit))


def _confirmed(index: ProjectIndex, need: tuple[str, str]) -> bool:
    kind, ref = need
    if kind == "module_class":
        return index.is_module_class(ref)
    return False


def _finding(r: FileResult, hit: ir.Hit, fixable: bool) -> Finding:
    d = make(hit.code, **hit.values)
    line, end_line, cell = hit.span.line, hit.span.end_line, None
    if r.cells is not None and r.cells.starts:
        cell, line = r.cells.locate(hit.span.line)
        end_line = line + (hit.span.end_line - hit.span.line)
    where = f"{r.path}:{'' if cell is None else f'cell {cell}:'}{line}:{hit.span.col + 1}"
    d = replace(d, where=where)
    return Finding(d, path=r.path, line=line, col=hit.span.col + 1, end_line=end_line, end_col=hit.span.end_col + 1,
                   cell=cell, fixable=fixable)


def _unused_noqa(r: FileResult) -> list[ir.Hit]:
    """TE090 hits; the fix never turns comment text into code (``# noqa: TE001 - 1`` keeps its ``#``)."""
    out = []
    for d in r.suppressions.lines.values():
        unused = [c for c in d.codes if c.startswith("TE0") and c not in d.used]
        if not unused:
            continue
        kept = [c for c in d.codes if c not in unused]
        if kept:
            span, text = ir.Span(d.line, d.col, d.line, d.end_col), f"# noqa: {', '.join(kept)}"
        elif d.head and d.tail:  # the comment goes on: keep it a comment
            span, text = ir.Span(d.line, d.col, d.line, d.end_col), "#"
        elif d.head:  # the whole comment, and the whitespace before it
            span, text = ir.Span(d.line, d.ws_col, d.line, d.end_col), ""
        else:  # inside a longer comment: drop the directive only
            span, text = ir.Span(d.line, d.col, d.line, d.end_col), ""
        out.append(ir.Hit("TE090", span, {"codes": ", ".join(unused)}, edit=ir.Edit(span, text)))
    return out
