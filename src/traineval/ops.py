"""THE table of torch's mode-sensitive modules and functional ops, as plain data.

One table, read three ways: the runtime classification (``te.mode_sensitive``), the tracing
of functional calls inside a forward (``te.check``, ``te.guard``) and the linter, which never
imports torch. So the table names classes and functions by their dotted names as strings, and
states each condition as data: which constructor argument or attribute makes the layer differ
between the modes, at which position, with which default. ``tests/test_ops.py`` builds every
class named here and checks that ``te.mode_sensitive`` agrees, and checks that the tracing hooks
know every functional op.

>>> from traineval import ops
>>> row = ops.module_op("torch.nn.LSTM")
>>> row.kind, [g.arg.name for g in row.gates]  # sensitive only with dropout > 0 and 2+ layers
('recurrent', ['dropout', 'num_layers'])
>>> ops.functional_op("torch.nn.functional.dropout").flag
Arg(name='training', position=2, default=True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal[
    "batchnorm", "instancenorm", "dropout", "activation", "attention", "recurrent", "spectral_norm", "qat"
]
Test = Literal["positive", "true", "at_least_2", "present"]


@dataclass(frozen=True)
class Arg:
    """A constructor or call argument: its keyword, its position (``None``: keyword only), its default."""

    name: str
    position: int | None
    default: object


@dataclass(frozen=True)
class Gate:
    """A condition for a layer to differ between the modes.

    ``arg`` is the constructor argument and ``test`` what its value must satisfy (for the
    linter): ``positive`` (> 0), ``true``, ``at_least_2``. ``attr`` is the attribute of a
    built module that the runtime reads instead (dotted, as in ``dropout.p``), tested with
    ``attr_test`` (default: ``test``; ``present`` means "is not None").
    """

    arg: Arg
    test: Test
    attr: str
    attr_test: Test | None = None

    def holds(self, value: object, *, built: bool = False) -> bool:
        """Whether ``value`` (an argument, or with ``built=True`` the attribute) satisfies the gate.

        >>> Gate(Arg("p", 0, 0.5), "positive", "p").holds(0.0)
        False
        """
        test = (self.attr_test or self.test) if built else self.test
        if test == "present":
            return value is not None
        if test == "true":
            return value is True
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return value > 0 if test == "positive" else value >= 2


@dataclass(frozen=True)
class ModuleOp:
    """A torch module class whose behaviour depends on ``module.training``.

    ``name`` is the class's dotted name. ``internal`` rows are matched at run time only: the
    private bases of torch's variants and of user subclasses, and helpers nobody builds by
    name (spectral norm's parametrization). Every
    gate must hold for the layer to be mode-sensitive. ``reason`` is formatted with the
    attributes named in braces. ``container`` rows (``nn.Transformer``) are not sensitive
    themselves at run time, where their children are classified instead; to the linter an
    instance is sensitive when its gates hold, or, for ``follows``, when the module passed
    as that argument is. ``batch_first`` is the attribute that declares the layout, if any.
    """

    name: str
    kind: Kind
    reason: str = ""
    gates: tuple[Gate, ...] = ()
    container: bool = False
    follows: Arg | None = None
    internal: bool = False
    batch_first: str | None = None

    @property
    def class_name(self) -> str:
        """The bare class name (``BatchNorm2d``)."""
        return self.name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class FunctionalOp:
    """A functional op that behaves like a mode-sensitive layer.

    ``rate`` is the probability argument (dropout ``p``, SDPA ``dropout_p``), ``flag`` the
    boolean that turns the op's training behaviour on (``None``: the op has none, so only a
    zero rate turns it off). The op is *active* when the flag is true and the rate positive.
    """

    name: str
    kind: Kind
    rate: Arg | None
    flag: Arg | None


def _p(default: float) -> Gate:
    return Gate(Arg("p", 0, default), "positive", "p")


_TRACK = "track_running_stats"
_BN_REASON = (
    "training: normalises with the batch's mean/variance and updates running statistics; "
    "eval: normalises with the running statistics"
)
_IN_REASON = (
    "training: per-instance statistics, running statistics updated; "
    "eval: running statistics (track_running_stats=True)"
)
_ELEMENT = "training: zeroes each element with p={p:g}, kept values scaled by 1/(1-p); eval: identity"
_CHANNEL = "training: drops whole channels with p={p:g}, kept values scaled by 1/(1-p); eval: identity"
_ALPHA = (
    "training: alpha dropout (keeps self-normalising mean/variance) with p={p:g}, kept values scaled "
    "by 1/(1-p); eval: identity"
)
_RNN_REASON = "training: dropout p={dropout:g} between the {num_layers} layers; eval: none"
_LAYER_REASON = (
    "training: dropout p={dropout.p:g} in attention and feed-forward; eval: none "
    "(and the fused fast path may be used)"
)
_QAT = (
    "quantization-aware fused conv/linear + BatchNorm: batch statistics and running-statistic "
    "updates in training (unless freeze_bn), running statistics in eval"
)


def _tracks(position: int, default: bool) -> Gate:
    return Gate(Arg(_TRACK, position, default), "true", "running_mean", "present")


def _norms(kind: Kind, names: tuple[str, ...], reason: str, default: bool) -> tuple[ModuleOp, ...]:
    rows = []
    for name in names:
        lazy = ".Lazy" in name  # Lazy* take no num_features, and LazyInstanceNorm* track by default
        rows.append(ModuleOp(name, kind, reason, (_tracks(3 if lazy else 4, default or lazy),)))
    return tuple(rows)


def _rnn(name: str, dropout_position: int) -> ModuleOp:
    gates = (
        Gate(Arg("dropout", dropout_position, 0.0), "positive", "dropout"),
        Gate(Arg("num_layers", 2, 1), "at_least_2", "num_layers"),
    )
    return ModuleOp(name, "recurrent", _RNN_REASON, gates, batch_first="batch_first")


#: Every torch module class that depends on the mode, public classes first, then the private
#: bases that subclasses are matched by. The runtime takes the first row on a class's MRO.
MODULES: tuple[ModuleOp, ...] = (
    *_norms(
        "batchnorm",
        ("torch.nn.BatchNorm1d", "torch.nn.BatchNorm2d", "torch.nn.BatchNorm3d", "torch.nn.LazyBatchNorm1d",
         "torch.nn.LazyBatchNorm2d", "torch.nn.LazyBatchNorm3d", "torch.nn.SyncBatchNorm"),
        _BN_REASON,
        True,
    ),
    *_norms(
        "instancenorm",
        ("torch.nn.InstanceNorm1d", "torch.nn.InstanceNorm2d", "torch.nn.InstanceNorm3d",
         "torch.nn.LazyInstanceNorm1d", "torch.nn.LazyInstanceNorm2d", "torch.nn.LazyInstanceNorm3d"),
        _IN_REASON,
        False,
    ),
    ModuleOp("torch.nn.Dropout", "dropout", _ELEMENT, (_p(0.5),)),
    ModuleOp("torch.nn.Dropout1d", "dropout", _CHANNEL, (_p(0.5),)),
    ModuleOp("torch.nn.Dropout2d", "dropout", _CHANNEL, (_p(0.5),)),
    ModuleOp("torch.nn.Dropout3d", "dropout", _CHANNEL, (_p(0.5),)),
    ModuleOp("torch.nn.AlphaDropout", "dropout", _ALPHA, (_p(0.5),)),
    ModuleOp("torch.nn.FeatureAlphaDropout", "dropout", _ALPHA, (_p(0.5),)),
    ModuleOp(
        "torch.nn.RReLU", "activation",
        "training: random negative slope in [{lower:g}, {upper:g}]; eval: fixed slope (lower+upper)/2",
    ),
    ModuleOp(
        "torch.nn.MultiheadAttention", "attention", "training: dropout p={dropout:g} on attention weights; eval: none",
        (Gate(Arg("dropout", 2, 0.0), "positive", "dropout"),), batch_first="batch_first",
    ),
    ModuleOp(
        "torch.nn.TransformerEncoderLayer", "attention", _LAYER_REASON,
        (Gate(Arg("dropout", 3, 0.1), "positive", "dropout.p"),), batch_first="self_attn.batch_first",
    ),
    ModuleOp(
        "torch.nn.TransformerDecoderLayer", "attention", _LAYER_REASON,
        (Gate(Arg("dropout", 3, 0.1), "positive", "dropout.p"),), batch_first="self_attn.batch_first",
    ),
    ModuleOp(
        "torch.nn.Transformer", "attention", "", (Gate(Arg("dropout", 5, 0.1), "positive", "dropout"),),
        container=True, batch_first="batch_first",
    ),
    ModuleOp(
        "torch.nn.TransformerEncoder", "attention", "", container=True, follows=Arg("encoder_layer", 0, None),
        batch_first="layers.0.self_attn.batch_first",
    ),
    ModuleOp(
        "torch.nn.TransformerDecoder", "attention", "", container=True, follows=Arg("decoder_layer", 0, None),
        batch_first="layers.0.self_attn.batch_first",
    ),
    _rnn("torch.nn.RNN", 6),  # RNN(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout)
    _rnn("torch.nn.LSTM", 5),
    _rnn("torch.nn.GRU", 5),
    *(
        ModuleOp(f"torch.ao.nn.intrinsic.qat.{name}", "qat", _QAT)
        for name in ("ConvBn1d", "ConvBn2d", "ConvBn3d", "ConvBnReLU1d", "ConvBnReLU2d", "ConvBnReLU3d", "LinearBn1d")
    ),
    ModuleOp(
        "torch.nn.utils.parametrizations._SpectralNorm", "spectral_norm",
        "training: one power iteration per forward updates the singular-vector estimates; eval: estimates fixed",
        internal=True,
    ),
    # bases: user subclasses and torch's own variants are matched by these
    ModuleOp(
        "torch.nn.modules.instancenorm._InstanceNorm", "instancenorm", _IN_REASON, (_tracks(4, False),), internal=True
    ),
    ModuleOp("torch.nn.modules.batchnorm._NormBase", "batchnorm", _BN_REASON, (_tracks(4, True),), internal=True),
    ModuleOp("torch.nn.modules.dropout._DropoutNd", "dropout", _ELEMENT, (_p(0.5),), internal=True),
    ModuleOp(
        "torch.nn.modules.rnn.RNNBase", "recurrent", _RNN_REASON,
        (
            Gate(Arg("dropout", None, 0.0), "positive", "dropout"),
            Gate(Arg("num_layers", None, 1), "at_least_2", "num_layers"),
        ),
        batch_first="batch_first", internal=True,
    ),
    ModuleOp("torch.ao.nn.intrinsic.qat.modules.conv_fused._ConvBnNd", "qat", _QAT, internal=True),
)

#: Every functional op that behaves like a mode-sensitive layer.
FUNCTIONAL: tuple[FunctionalOp, ...] = (
    *(
        FunctionalOp(f"torch.nn.functional.{name}", "dropout", Arg("p", 1, 0.5), Arg("training", 2, True))
        for name in ("dropout", "dropout1d", "dropout2d", "dropout3d")
    ),
    *(
        FunctionalOp(f"torch.nn.functional.{name}", "dropout", Arg("p", 1, 0.5), Arg("training", 2, False))
        for name in ("alpha_dropout", "feature_alpha_dropout")
    ),
    *(
        FunctionalOp(f"torch.{name}", "dropout", Arg("p", 1, None), Arg("train", 2, None))
        for name in ("dropout", "alpha_dropout", "feature_dropout", "feature_alpha_dropout")
    ),
    FunctionalOp("torch.nn.functional.rrelu", "activation", None, Arg("training", 3, False)),
    FunctionalOp("torch.nn.functional.batch_norm", "batchnorm", None, Arg("training", 5, False)),
    FunctionalOp("torch.nn.functional.scaled_dot_product_attention", "attention", Arg("dropout_p", 4, 0.0), None),
    FunctionalOp(
        "torch.nn.functional.multi_head_attention_forward", "attention", Arg("dropout_p", 10, None),
        Arg("training", 13, True),
    ),
)

_MODULES = {row.name: row for row in MODULES}
_FUNCTIONAL = {row.name: row for row in FUNCTIONAL}


def module_op(name: str) -> ModuleOp | None:
    """The row of the module class with dotted ``name`` (``torch.nn.modules.batchnorm.BatchNorm2d``
    and ``torch.nn.BatchNorm2d`` alike), or ``None``.

    >>> module_op("torch.nn.modules.dropout.Dropout").name
    'torch.nn.Dropout'
    """
    return _MODULES.get(name) or _MODULES.get(public_name(name))


def functional_op(name: str) -> FunctionalOp | None:
    """The row of the functional op with dotted ``name``, or ``None``.

    >>> functional_op("torch.nn.functional.scaled_dot_product_attention").rate.name
    'dropout_p'
    """
    return _FUNCTIONAL.get(name)


def public_name(name: str) -> str:
    """``torch.nn.Dropout`` for ``torch.nn.modules.dropout.Dropout``; other names as they are.

    >>> public_name("torch.nn.modules.batchnorm.BatchNorm2d"), public_name("torch.nn.modules.batchnorm._NormBase")
    ('torch.nn.BatchNorm2d', 'torch.nn.modules.batchnorm._NormBase')
    """
    head, _, last = name.rpartition(".")
    if head.startswith("torch.nn.modules.") and not last.startswith("_"):
        return f"torch.nn.{last}"
    return name
