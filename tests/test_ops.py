"""Drift tests for the one table of mode-sensitive ops (``traineval.ops``).

The table is read three ways — by the linter from constructor arguments, by the runtime from
a built module's attributes, by tracing from call arguments — so each reading is checked
against the others and against torch itself: a layer is in the table exactly when its output
(or its state) differs between the modes.
"""

from __future__ import annotations

import importlib
import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import traineval as te
from traineval import ops
from traineval.core import tracing

# class name -> (positional constructor arguments before the gated ones, input for one forward)
_X3 = torch.randn(4, 3, 5)
BUILD: dict[str, tuple[tuple, object]] = {
    "BatchNorm1d": ((3,), _X3),
    "BatchNorm2d": ((3,), torch.randn(4, 3, 5, 5)),
    "BatchNorm3d": ((3,), torch.randn(4, 3, 2, 3, 3)),
    "SyncBatchNorm": ((3,), _X3),
    "LazyBatchNorm1d": ((), _X3),
    "LazyBatchNorm2d": ((), torch.randn(4, 3, 5, 5)),
    "LazyBatchNorm3d": ((), torch.randn(4, 3, 2, 3, 3)),
    "InstanceNorm1d": ((3,), _X3),
    "InstanceNorm2d": ((3,), torch.randn(4, 3, 5, 5)),
    "InstanceNorm3d": ((3,), torch.randn(4, 3, 2, 3, 3)),
    "LazyInstanceNorm1d": ((), _X3),
    "LazyInstanceNorm2d": ((), torch.randn(4, 3, 5, 5)),
    "LazyInstanceNorm3d": ((), torch.randn(4, 3, 2, 3, 3)),
    "Dropout": ((), torch.randn(64, 8)),
    "Dropout1d": ((), torch.randn(8, 16, 4)),
    "Dropout2d": ((), torch.randn(8, 16, 4, 4)),
    "Dropout3d": ((), torch.randn(8, 16, 2, 4, 4)),
    "AlphaDropout": ((), torch.randn(64, 8)),
    "FeatureAlphaDropout": ((), torch.randn(8, 16, 4, 4)),
    "RReLU": ((), -torch.rand(64, 8) - 0.1),
    "MultiheadAttention": ((8, 2), None),
    "TransformerEncoderLayer": ((8, 2, 16), torch.randn(5, 3, 8)),
    "TransformerDecoderLayer": ((8, 2, 16), None),
    "RNN": ((4, 6), torch.randn(5, 3, 4)),
    "LSTM": ((4, 6), torch.randn(5, 3, 4)),
    "GRU": ((4, 6), torch.randn(5, 3, 4)),
}
PUBLIC = [row for row in ops.MODULES if row.name.startswith("torch.nn.") and not row.internal]


def _resolve(name: str) -> object:
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("row", ops.MODULES, ids=lambda r: r.name)
def test_every_class_exists_in_this_torch(row: ops.ModuleOp) -> None:
    assert isinstance(_resolve(row.name), type)


def test_every_public_torch_nn_row_has_a_build_recipe() -> None:
    missing = {r.class_name for r in PUBLIC if not r.container} - set(BUILD)
    assert not missing


def _values(gate: ops.Gate) -> list[object]:
    if gate.test == "positive":
        return [0.0, 0.3]
    if gate.test == "at_least_2":
        return [1, 2]
    return [False, True]


def _build(row: ops.ModuleOp, values: dict[str, object]) -> nn.Module:
    cls = _resolve(row.name)
    args, _ = BUILD[row.class_name]
    return cls(*args, **values)


def _differs(module: nn.Module, x: object) -> bool:
    """Torch's own answer: do train and eval forwards differ, or does a train forward change a buffer?"""
    torch.manual_seed(0)
    if isinstance(module, nn.MultiheadAttention):
        q = torch.randn(5, 3, 8)
        run = lambda: module(q, q, q)[0]  # noqa: E731
    elif isinstance(module, nn.TransformerDecoderLayer):
        q = torch.randn(5, 3, 8)
        run = lambda: module(q, q)  # noqa: E731
    else:
        run = lambda: module(x)  # noqa: E731
    with torch.no_grad():
        module.eval()
        run()  # materialise lazy modules
        before = {k: b.clone() for k, b in module.named_buffers()}
        eval_out = run()
        outs = []
        module.train()
        for _ in range(3):
            out = run()
            outs.append(out[0] if isinstance(out, tuple) else out)
        module.eval()
        changed = any(not torch.equal(before[k], b) for k, b in module.named_buffers())
        eval_out = eval_out[0] if isinstance(eval_out, tuple) else eval_out
    return changed or any(not torch.allclose(o, eval_out, atol=1e-6) for o in outs)


@pytest.mark.filterwarnings("ignore:dropout option adds dropout:UserWarning")
@pytest.mark.parametrize("row", [r for r in PUBLIC if not r.container], ids=lambda r: r.class_name)
def test_linter_runtime_and_torch_agree_on_every_gate_setting(row: ops.ModuleOp) -> None:
    settings = itertools.product(*(_values(g) for g in row.gates)) if row.gates else [()]
    for combo in settings:
        values = {g.arg.name: v for g, v in zip(row.gates, combo, strict=True)}
        static = all(g.holds(v) for g, v in zip(row.gates, combo, strict=True))  # the linter's reading
        module = _build(row, values)
        _, x = BUILD[row.class_name]
        truth = _differs(module, x)
        runtime = te.classify(module) is not None
        assert static == runtime == truth, (row.name, values, static, runtime, truth)
        if runtime:
            found = te.classify(module)
            assert found is not None and found.kind == row.kind and "{" not in found.reason


@pytest.mark.parametrize("row", [r for r in PUBLIC if not r.container], ids=lambda r: r.class_name)
def test_defaults_as_the_linter_reads_them_match_the_runtime(row: ops.ModuleOp) -> None:
    static = all(g.holds(g.arg.default) for g in row.gates)
    assert static == (te.classify(_build(row, {})) is not None)


@pytest.mark.parametrize("row", [r for r in PUBLIC if not r.container], ids=lambda r: r.class_name)
def test_positions_match_torch_signatures(row: ops.ModuleOp) -> None:
    import inspect

    cls = _resolve(row.name)
    for gate in row.gates:
        if gate.arg.position is None:
            continue
        try:
            params = list(inspect.signature(cls).parameters)
        except (TypeError, ValueError):
            continue
        if params[:1] == ["args"]:  # RNN/LSTM/GRU take *args: see the test below
            continue
        assert params[gate.arg.position] == gate.arg.name, (row.name, gate)


def test_rnn_positions_by_building_positionally() -> None:
    # RNN(input, hidden, num_layers, nonlinearity, bias, batch_first, dropout); LSTM/GRU lack nonlinearity
    assert nn.RNN(4, 6, 2, "tanh", True, False, 0.25).dropout == 0.25
    assert nn.LSTM(4, 6, 2, True, False, 0.25).dropout == 0.25
    assert nn.GRU(4, 6, 2, True, False, 0.25).dropout == 0.25
    for name in ("torch.nn.RNN", "torch.nn.LSTM", "torch.nn.GRU"):
        row = ops.module_op(name)
        assert row is not None
        positions = {g.arg.name: g.arg.position for g in row.gates}
        assert positions == {"dropout": 6 if name.endswith("RNN") else 5, "num_layers": 2}


def test_subclasses_match_through_private_bases() -> None:
    class MyNorm(nn.modules.batchnorm._BatchNorm):
        def _check_input_dim(self, input: torch.Tensor) -> None:
            pass

    class MyDrop(nn.modules.dropout._DropoutNd):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.dropout(x, self.p, self.training)

    assert te.classify(MyNorm(3)).kind == "batchnorm"
    assert te.classify(MyDrop(0.2)) is not None


@pytest.mark.parametrize("op", ops.FUNCTIONAL, ids=lambda o: o.name)
def test_tracing_knows_every_functional_op(op: ops.FunctionalOp) -> None:
    assert _resolve(op.name) in tracing.WATCHED
    assert tracing.WATCHED[_resolve(op.name)] is op


ACTIVE_CALLS = {
    "torch.nn.functional.dropout": (
        lambda: F.dropout(torch.ones(4), 0.5),
        lambda: F.dropout(torch.ones(4), 0.5, False),
    ),
    "torch.nn.functional.dropout1d": (
        lambda: F.dropout1d(torch.ones(2, 3, 4), 0.5),
        lambda: F.dropout1d(torch.ones(2, 3, 4), 0.0),
    ),
    "torch.nn.functional.dropout2d": (
        lambda: F.dropout2d(torch.ones(2, 3, 4, 4), 0.5),
        lambda: F.dropout2d(torch.ones(2, 3, 4, 4), 0.5, training=False),
    ),
    "torch.nn.functional.dropout3d": (
        lambda: F.dropout3d(torch.ones(2, 3, 2, 4, 4), 0.5),
        lambda: F.dropout3d(torch.ones(2, 3, 2, 4, 4), 0.5, False),
    ),
    "torch.nn.functional.alpha_dropout": (
        lambda: F.alpha_dropout(torch.ones(4), 0.5, True),
        lambda: F.alpha_dropout(torch.ones(4), 0.5),
    ),
    "torch.nn.functional.feature_alpha_dropout": (
        lambda: F.feature_alpha_dropout(torch.ones(2, 3, 4), 0.5, training=True),
        lambda: F.feature_alpha_dropout(torch.ones(2, 3, 4), 0.5),
    ),
    "torch.dropout": (
        lambda: torch.dropout(torch.ones(4), 0.5, True),
        lambda: torch.dropout(torch.ones(4), 0.5, False),
    ),
    "torch.alpha_dropout": (
        lambda: torch.alpha_dropout(torch.ones(4), 0.5, True),
        lambda: torch.alpha_dropout(torch.ones(4), 0.5, False),
    ),
    "torch.feature_dropout": (
        lambda: torch.feature_dropout(torch.ones(2, 3, 4), 0.5, True),
        lambda: torch.feature_dropout(torch.ones(2, 3, 4), 0.0, True),
    ),
    "torch.feature_alpha_dropout": (
        lambda: torch.feature_alpha_dropout(torch.ones(2, 3, 4), 0.5, True),
        lambda: torch.feature_alpha_dropout(torch.ones(2, 3, 4), 0.5, False),
    ),
    "torch.nn.functional.rrelu": (lambda: F.rrelu(-torch.ones(4), training=True), lambda: F.rrelu(-torch.ones(4))),
    "torch.nn.functional.batch_norm": (
        lambda: F.batch_norm(torch.randn(4, 3), torch.zeros(3), torch.ones(3), training=True),
        lambda: F.batch_norm(torch.randn(4, 3), torch.zeros(3), torch.ones(3)),
    ),
    "torch.nn.functional.scaled_dot_product_attention": (
        lambda: F.scaled_dot_product_attention(*[torch.randn(1, 2, 3, 4)] * 3, dropout_p=0.5),
        lambda: F.scaled_dot_product_attention(*[torch.randn(1, 2, 3, 4)] * 3),
    ),
    "torch.nn.functional.multi_head_attention_forward": (
        lambda: nn.MultiheadAttention(4, 2, dropout=0.5).train()(*[torch.randn(3, 1, 4)] * 3),
        lambda: nn.MultiheadAttention(4, 2, dropout=0.5).eval()(*[torch.randn(3, 1, 4)] * 3),
    ),
}


def test_every_functional_op_has_an_active_and_an_inactive_call() -> None:
    assert set(ACTIVE_CALLS) == {op.name for op in ops.FUNCTIONAL}


@pytest.mark.parametrize("name", sorted(ACTIVE_CALLS))
def test_functional_watch_reports_active_calls_only(name: str) -> None:
    active, inactive = ACTIVE_CALLS[name]
    short = name.replace("torch.nn.functional.", "F.")
    for call, expected in ((active, True), (inactive, False)):
        found: list[tracing.FunctionalCall] = []
        with tracing.FunctionalWatch(found.append):
            call()
        assert any(c.what == short for c in found) is expected, (name, expected, found)


def test_linter_tables_are_read_from_ops() -> None:
    from traineval.lint import astutil
    from traineval.lint.rules import functional

    assert {f"torch.nn.{n}" for n in astutil.BN_CLASSES} <= {r.name for r in ops.MODULES if r.kind == "batchnorm"}
    assert set(functional.FUNCTIONAL_DROPOUT) <= {op.name for op in ops.FUNCTIONAL}
    assert ops.functional_op(functional.SDPA) is not None


def test_ops_is_torch_free() -> None:
    import subprocess
    import sys

    code = "import sys, traineval.ops; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
