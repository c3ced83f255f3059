"""The measurements behind each claim of the article (C1–C8) and the two traps beyond it (T1, T2).

Every function takes the trained models and data (:class:`Context`) and returns a
:class:`Claim`: the article's statement, the exact behaviour, the numbers measured, and a
verdict *computed from those numbers* — ``holds`` when the measurement bears out the
statement, ``differs`` when it shows a measurable difference from the statement as
written, ``fails`` when the expected behaviour did not show at all (that would mean
PyTorch changed, and is worth a bug report).

Experiments never modify the trained models they are given: anything that runs a model
in training mode works on a ``copy.deepcopy``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

import traineval as te
from traineval.demo.models import DemoCNN

HOLDS, DIFFERS, FAILS = "holds", "differs", "fails"


@dataclass
class Context:
    """The trained models and the data every experiment uses."""

    cnn: DemoCNN
    autoencoder: nn.Module
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    ae_test: torch.Tensor
    seed: int
    sweep_images: int
    repeats: int
    train_batch_size: int = 64


@dataclass
class Claim:
    """One claim (or trap) reproduced: statement, exact behaviour, measurement, verdict.

    ``values`` holds the numbers (JSON-ready); ``plot`` holds arrays for the figures and is
    not written to ``results.json``.
    """

    id: str
    title: str
    article: str
    exact: str
    measurement: str
    verdict: str
    values: dict[str, Any] = field(default_factory=dict)
    plot: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "article": self.article,
            "exact": self.exact,
            "measurement": self.measurement,
            "verdict": self.verdict,
            "values": self.values,
        }


def untrained_context(seed: int = 0, *, dropout: float = 0.5) -> Context:
    """A small :class:`Context` with untrained models, for examples and tests (a fraction of a second).

    The CNN gets three training-mode batches so that its running statistics have a history.

    >>> ctx = untrained_context()
    >>> len(ctx.x_train), len(ctx.x_test), ctx.cnn.training
    (96, 64, False)
    """
    from traineval.demo.data import blobs_dataset, shapes_dataset
    from traineval.demo.models import ColourAutoencoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        x, y = shapes_dataset(96, seed=seed * 10 + 1)
        xt, yt = shapes_dataset(64, seed=seed * 10 + 2)
        cnn = DemoCNN(p=dropout)
        with te.training(cnn), torch.no_grad():
            for xb in _chunks(x, 32):
                cnn(xb)
        ae = ColourAutoencoder()
    return Context(cnn=cnn.eval(), autoencoder=ae.eval(), x_train=x, y_train=y, x_test=xt, y_test=yt,
                   ae_test=blobs_dataset(8, seed=seed * 10 + 3), seed=seed, sweep_images=16, repeats=3)


# ------------------------------------------------------------------------------ helpers
def bn_layers(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """The BatchNorm layers of ``model`` that keep running statistics, by name.

    >>> [name for name, _ in bn_layers(nn.Sequential(nn.BatchNorm1d(2), nn.BatchNorm1d(2, track_running_stats=False)))]
    ['0']
    """
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
    ]


def _buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.detach().clone() for name, b in model.named_buffers()}


def _buffers_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _chunks(x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for i in range(0, len(x), batch_size):
        yield x[i : i + batch_size]


def _accuracy_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, train: bool) -> float:
    """Accuracy with the model in training (``train=True``) or eval mode, fed ``batch_size`` images at a time."""
    correct = 0
    ctx = te.training(model) if train else te.evaluating(model)
    with ctx, torch.no_grad():
        for i in range(0, len(x), batch_size):
            correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(x)


def _binomial_ok(dropped: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(dropped - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def _capture(
    layers: list[tuple[str, nn.Module]],
) -> tuple[dict[str, dict[str, torch.Tensor]], Callable[[], None]]:
    """Record each layer's input, output and (before the call) running statistics on its next forward."""
    seen: dict[str, dict[str, torch.Tensor]] = {}
    handles = []
    for name, layer in layers:

        def pre(mod: nn.Module, args: tuple[Any, ...], name: str = name) -> None:
            seen[name] = {"input": args[0].detach().double()}
            if getattr(mod, "running_mean", None) is not None:
                seen[name]["running_mean"] = mod.running_mean.detach().double().clone()
                seen[name]["running_var"] = mod.running_var.detach().double().clone()

        def post(mod: nn.Module, args: tuple[Any, ...], out: torch.Tensor, name: str = name) -> None:
            seen[name]["output"] = out.detach().double()

        handles.append(layer.register_forward_pre_hook(pre))
        handles.append(layer.register_forward_hook(post))

    def remove() -> None:
        for h in handles:
            h.remove()

    return seen, remove


def _normalise(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    shape = (1, -1) + (1,) * (x.dim() - 2)
    w = bn.weight.detach().double().view(shape)
    b = bn.bias.detach().double().view(shape)
    return (x - mean.view(shape)) / torch.sqrt(var.view(shape) + bn.eps) * w + b


def _channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-channel mean and biased variance over every axis but 1, in float64, and the count."""
    flat = x.double().transpose(0, 1).reshape(x.shape[1], -1)
    return flat.mean(1), flat.var(1, unbiased=False), flat.shape[1]


def population_statistics(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The true whole-data statistics of every BatchNorm input: mean and unbiased variance, float64.

    The reference is computed another way than any recalibration routine: a float64 copy of
    the model is run once in training mode on *all* of ``x`` as one batch, so that each
    BatchNorm normalises with the whole-data statistics of its input — the statistics an
    eval-mode model should hold — and each layer's input is recorded. ``model`` is untouched.
    (Upstream layers normalise with the biased whole-data variance, eval mode with the unbiased
    one: a relative difference of 1/n for n values per channel.)

    >>> model = nn.Sequential(nn.BatchNorm1d(1))
    >>> mean, var = population_statistics(model, torch.tensor([[0.0], [2.0], [10.0]]))["0"]
    >>> round(float(mean), 4), round(float(var), 4)          # mean 4, unbiased variance 28
    (4.0, 28.0)
    """
    ref = copy.deepcopy(model).double()
    layers = bn_layers(ref)
    seen, remove = _capture([(n, m) for n, m in layers])
    try:
        with te.training(ref), torch.no_grad():
            ref(x.double())
    finally:
        remove()
    stats = {}
    for name, _ in layers:
        mean, var, count = _channel_stats(seen[name]["input"])
        stats[name] = (mean, var * count / (count - 1))  # unbiased, as BatchNorm's running_var
    return stats


def stats_gap(
    model: nn.Module, population: dict[str, tuple[torch.Tensor, torch.Tensor]]
) -> dict[str, dict[str, float]]:
    """Per layer: mean |running − population| of the mean in population-std units, and of the variance as a ratio.

    >>> model = nn.Sequential(nn.BatchNorm1d(1))                  # running mean 0, running variance 1
    >>> stats_gap(model, {"0": (torch.tensor([0.5]), torch.tensor([4.0]))})
    {'0': {'mean_gap_std': 0.25, 'var_gap_rel': 0.75}}
    """
    gaps = {}
    for name, bn in bn_layers(model):
        pm, pv = population[name]
        rm = bn.running_mean.detach().double()
        rv = bn.running_var.detach().double()
        gaps[name] = {
            "mean_gap_std": float(((rm - pm).abs() / pv.clamp_min(1e-12).sqrt()).mean()),
            "var_gap_rel": float(((rv / pv.clamp_min(1e-12)) - 1).abs().mean()),
        }
    return gaps


def _recalibrate(model: nn.Module, batches: list[torch.Tensor], order: str = "layerwise") -> te.RecalibrationReport:
    """Replace ``model``'s running statistics by population statistics with ``te.recalibrate_batchnorm``."""
    return te.recalibrate_batchnorm(model, batches, order=order, progress=False)


# -------------------------------------------------------------------------------- claims
def c1_two_modes(ctx: Context) -> Claim:
    """C1: ``train()``/``eval()`` flip one flag on every module; the mode-sensitive layers are what it is for.

    >>> c = c1_two_modes(untrained_context())
    >>> c.verdict, c.values["modules"], len(c.values["mode_sensitive"])
    ('holds', 21, 5)
    """
    model = copy.deepcopy(ctx.cnn)
    n_modules = len(te.modes(model))
    model.train()
    after_train = sum(te.modes(model).values())
    model.eval()
    after_eval = sum(te.modes(model).values())
    sensitive = te.mode_sensitive(model)
    kinds = sorted({s.kind for s in sensitive})
    ok = after_train == n_modules and after_eval == 0 and len(sensitive) > 0
    return Claim(
        "C1",
        "two modes, switched by train() / eval()",
        "A model has two modes, switched with model.train() and model.eval(); train() before training, "
        "eval() before testing.",
        "Each module carries one boolean, module.training; model.train(mode) sets it recursively and "
        "model.eval() is model.train(False). Only mode-sensitive layers read it.",
        f"model.train() set {after_train}/{n_modules} module flags to True, model.eval() left {after_eval}/"
        f"{n_modules} True; {len(sensitive)} of {n_modules} modules read the flag ({', '.join(kinds)})",
        HOLDS if ok else FAILS,
        {
            "modules": n_modules,
            "training_after_train": after_train,
            "training_after_eval": after_eval,
            "mode_sensitive": [{"name": s.name, "kind": s.kind, "type": s.type_name} for s in sensitive],
        },
    )


def _normalisation_errors(ctx: Context) -> dict[str, Any]:
    """Per mode: how far each BatchNorm's output is from batch-statistics and from running-statistics normalisation.

    Also keeps, under ``"plot"``, each BatchNorm's per-channel mean over a training-mode batch, over a
    training-mode batch of one image, and its running mean, for the C2 figure.
    """
    model = copy.deepcopy(ctx.cnn)
    layers = bn_layers(model)
    x = ctx.x_test[: ctx.train_batch_size]
    out: dict[str, Any] = {}
    plot: dict[str, Any] = {"batch_size": len(x), "layers": {}}
    for mode in ("train", "eval"):
        seen, remove = _capture([(n, m) for n, m in layers])
        try:
            with (te.training(model) if mode == "train" else te.evaluating(model)), torch.no_grad():
                model(x)
        finally:
            remove()
        err_batch, err_running = [], []
        for name, bn in layers:
            rec = seen[name]
            mean, var, _ = _channel_stats(rec["input"])
            if mode == "train":
                plot["layers"][name] = {"batch_mean": mean.tolist(), "running_mean": rec["running_mean"].tolist()}
            err_batch.append(float((rec["output"] - _normalise(rec["input"], mean, var, bn)).abs().max()))
            ref = _normalise(rec["input"], rec["running_mean"], rec["running_var"], bn)
            err_running.append(float((rec["output"] - ref).abs().max()))
        out[mode] = {"vs_batch_stats": max(err_batch), "vs_running_stats_min": min(err_running),
                     "vs_running_stats": max(err_running), "vs_batch_stats_min": min(err_batch)}
    single = copy.deepcopy(ctx.cnn)
    seen, remove = _capture(bn_layers(single))
    try:
        with te.training(single), torch.no_grad():
            single(x[:1])
    finally:
        remove()
    for name, _ in layers:
        plot["layers"][name]["single_image_mean"] = _channel_stats(seen[name]["input"])[0].tolist()
    out["plot"] = plot
    return out


def _dropout_in_model(ctx: Context) -> dict[str, Any]:
    """Measure the CNN's own ``nn.Dropout`` in a training-mode forward: drop rate and kept-unit scale."""
    model = copy.deepcopy(ctx.cnn)
    seen, remove = _capture([("dropout", model.dropout)])
    try:
        with te.training(model), torch.no_grad():
            torch.manual_seed(ctx.seed + 7)
            model(ctx.x_test[:256])
    finally:
        remove()
    inp, outp = seen["dropout"]["input"], seen["dropout"]["output"]
    live = inp != 0  # ReLU zeros cannot be told from dropped units
    kept = live & (outp != 0)
    n, dropped = int(live.sum()), int((live & (outp == 0)).sum())
    scale = (outp[kept] / inp[kept]) if bool(kept.any()) else torch.ones(1, dtype=torch.float64)
    return {
        "p": model.dropout.p,
        "units": n,
        "dropped": dropped,
        "drop_rate": dropped / max(n, 1),
        "kept_scale_min": float(scale.min()),
        "kept_scale_max": float(scale.max()),
    }


def c2_training_mode(ctx: Context, norm: dict[str, Any], drop: dict[str, Any]) -> Claim:
    """C2: in training mode BatchNorm normalises with the batch's statistics and Dropout drops units.

    ``norm`` and ``drop`` are the measurements shared with C3 and C7.

    >>> ctx = untrained_context()
    >>> c = c2_training_mode(ctx, _normalisation_errors(ctx), _dropout_in_model(ctx))
    >>> c.verdict, c.values["bn_max_error_vs_batch_stats"] < 1e-5
    ('holds', True)
    """
    t = norm["train"]
    bn_ok = t["vs_batch_stats"] < 1e-4 and t["vs_running_stats_min"] > 1e-2
    drop_ok = drop["dropped"] > 0 and _binomial_ok(drop["dropped"], drop["units"], drop["p"])
    return Claim(
        "C2",
        "training mode: batch statistics, dropped units",
        "In training mode BatchNorm normalises with the mean and variance of the current batch, and Dropout "
        "randomly drops a part of the connections.",
        "BatchNorm normalises with the batch mean and the biased batch variance (and updates its running "
        "statistics with the unbiased one); Dropout zeroes each unit independently with probability p.",
        f"all {len(bn_layers(ctx.cnn))} BatchNorm outputs match batch-statistics normalisation to "
        f"{t['vs_batch_stats']:.1e} (running statistics would be off by ≥ {t['vs_running_stats_min']:.2f}); "
        f"Dropout(p={drop['p']}) zeroed {drop['drop_rate']:.1%} of {drop['units']} live units",
        HOLDS if bn_ok and drop_ok else FAILS,
        {"bn_max_error_vs_batch_stats": t["vs_batch_stats"],
         "bn_min_error_vs_running_stats": t["vs_running_stats_min"],
         "dropout_rate": drop["drop_rate"], "dropout_units": drop["units"], "dropout_p": drop["p"]},
        norm["plot"],
    )


def c3_eval_mode(ctx: Context, norm: dict[str, Any]) -> Claim:
    """C3: eval mode uses running statistics, fixed while testing — but they are an EMA, not whole-data statistics.

    >>> ctx = untrained_context()
    >>> c = c3_eval_mode(ctx, _normalisation_errors(ctx))
    >>> c.verdict, c.values["buffers_unchanged_by_eval_passes"]
    ('differs', True)
    """
    e = norm["eval"]
    uses_running = e["vs_running_stats"] < 1e-4 and e["vs_batch_stats_min"] > 1e-2
    model = copy.deepcopy(ctx.cnn)
    before = _buffers(model)
    with te.evaluating(model), torch.no_grad():
        for xb in _chunks(ctx.x_test, 64):
            model(xb)
    fixed = _buffers_equal(before, _buffers(model))

    population = population_statistics(ctx.cnn, ctx.x_train)
    gap_before = stats_gap(ctx.cnn, population)
    acc_before = _accuracy_at(ctx.cnn, ctx.x_test, ctx.y_test, 256, train=False)
    batches = list(_chunks(ctx.x_train, 256))
    recal = copy.deepcopy(ctx.cnn)
    _recalibrate(recal, batches, order="layerwise")
    gap_after = stats_gap(recal, population)
    acc_after = _accuracy_at(recal, ctx.x_test, ctx.y_test, 256, train=False)
    single = copy.deepcopy(ctx.cnn)
    _recalibrate(single, batches, order="single-pass")
    gap_single = stats_gap(single, population)

    def worst(gaps: dict[str, dict[str, float]], key: str) -> float:
        return max(g[key] for g in gaps.values())

    names = list(gap_before)
    momentum = bn_layers(ctx.cnn)[0][1].momentum
    steps = int(bn_layers(ctx.cnn)[0][1].num_batches_tracked)
    steps_per_epoch = len(ctx.x_train) // ctx.train_batch_size
    last_epoch_weight = 1 - (1 - momentum) ** steps_per_epoch if momentum else None
    mean_b, var_b = worst(gap_before, "mean_gap_std"), worst(gap_before, "var_gap_rel")
    mean_a, var_a = worst(gap_after, "mean_gap_std"), worst(gap_after, "var_gap_rel")
    text = (
        f"eval outputs match running-statistics normalisation to {e['vs_running_stats']:.1e}; "
        f"test passes left every buffer bit-identical ({'yes' if fixed else 'NO'}). Running stats vs whole-data "
        f"stats: mean off by up to {mean_b:.3f} std, variance by up to {var_b:.1%}; after "
        f"te.recalibrate_batchnorm: {mean_a:.1e} std and {var_a:.1e} relative (float32 rounding); test accuracy "
        f"{acc_before:.1%} → {acc_after:.1%}"
    )
    # The EMA "differs" from whole-data statistics when recalibration closes most of the gap.
    ema_differs = (mean_b > 4 * mean_a and mean_b > 1e-4) or (var_b > 4 * var_a and var_b > 1e-4)
    if not (uses_running and fixed):
        verdict = FAILS
    else:
        verdict = DIFFERS if ema_differs else HOLDS
    exact = (
        f"Eval mode uses running_mean/running_var, unchanged while testing. They are not the statistics of "
        f"the whole training data: each training step does running ← (1−m)·running + m·batch with "
        f"momentum m={momentum} (the unbiased batch variance), so the last 10 batches carry "
        f"{1 - (1 - momentum) ** 10:.0%} of the weight, the last epoch's {steps_per_epoch} batches "
        f"{last_epoch_weight:.1%}, and earlier epochs, computed with older weights, almost none. "
        "True population statistics need a separate pass: te.recalibrate_batchnorm."
        if momentum
        else "Eval mode uses running statistics; with momentum=None they are the cumulative average of all batches."
    )
    return Claim(
        "C3",
        "eval mode: running statistics (an EMA, not whole-data)",
        "In evaluation mode BatchNorm uses statistics of the whole training data (kept fixed while testing), and "
        "Dropout uses every connection.",
        exact,
        text,
        verdict,
        {
            "eval_max_error_vs_running_stats": e["vs_running_stats"],
            "eval_min_error_vs_batch_stats": e["vs_batch_stats_min"],
            "buffers_unchanged_by_eval_passes": fixed,
            "momentum": momentum,
            "num_batches_tracked": steps,
            "last_epoch_weight": last_epoch_weight,
            "gap_before": gap_before,
            "gap_after_recalibration": gap_after,
            "gap_after_single_pass_recalibration": gap_single,
            "test_accuracy_before": acc_before,
            "test_accuracy_after_recalibration": acc_after,
        },
        {
            "layers": names,
            "population": {n: (population[n][0].tolist(), population[n][1].tolist()) for n in names},
            "running": {n: (bn.running_mean.tolist(), bn.running_var.tolist()) for n, bn in bn_layers(ctx.cnn)},
            "recalibrated": {n: (bn.running_mean.tolist(), bn.running_var.tolist()) for n, bn in bn_layers(recal)},
        },
    )


def c4_state_change(ctx: Context) -> Claim:
    """C4: a forgotten ``eval()`` changes BatchNorm's running statistics even under ``no_grad``.

    >>> c = c4_state_change(untrained_context())
    >>> c.verdict, c.values["eval_pass_unchanged"], c.values["train_pass_batch_1"]["batches_counted"]
    ('holds', True, 64)
    """
    model = copy.deepcopy(ctx.cnn)
    acc_before = _accuracy_at(model, ctx.x_test, ctx.y_test, 256, train=False)
    before = _buffers(model)
    with torch.no_grad(), te.evaluating(model):
        for xb in _chunks(ctx.x_test, 64):
            model(xb)
    eval_unchanged = _buffers_equal(before, _buffers(model))
    params_before = {n: p.detach().clone() for n, p in model.named_parameters()}

    runs = {}
    for bs in (64, 1):
        m = copy.deepcopy(ctx.cnn)
        start = {n: (bn.running_mean.clone(), bn.running_var.clone()) for n, bn in bn_layers(m)}
        tracked = int(bn_layers(m)[0][1].num_batches_tracked)
        torch.manual_seed(ctx.seed + 11)
        m.train()  # the bug: the model was left in training mode
        with torch.no_grad():
            for xb in _chunks(ctx.x_test, bs):
                m(xb)
        m.eval()
        mean_shift = max(
            float(((bn.running_mean - start[n][0]).abs() / start[n][1].sqrt()).mean()) for n, bn in bn_layers(m)
        )
        var_change = max(float((bn.running_var / start[n][1] - 1).abs().mean()) for n, bn in bn_layers(m))
        runs[bs] = {
            "mean_shift_std": mean_shift,
            "var_change_rel": var_change,
            "batches_counted": int(bn_layers(m)[0][1].num_batches_tracked) - tracked,
            "accuracy_after": _accuracy_at(m, ctx.x_test, ctx.y_test, 256, train=False),
            "weights_unchanged": all(torch.equal(p, params_before[n]) for n, p in m.named_parameters()),
        }
    r64, r1 = runs[64], runs[1]
    changed = r64["mean_shift_std"] > 0 and r1["mean_shift_std"] > 0 and r1["batches_counted"] > 0
    ok = eval_unchanged and changed and r64["weights_unchanged"] and r1["weights_unchanged"]
    return Claim(
        "C4",
        "test data in training mode changes the model",
        "Without model.eval(), merely feeding test data changes the model's state (BatchNorm's running "
        "statistics), even though nothing is trained.",
        "Every training-mode forward updates running_mean, running_var and num_batches_tracked, whatever "
        "torch.no_grad() says; the weights stay put. The damage grows as the test batches shrink.",
        f"one no_grad pass over the test set in training mode, no weight changed: batches of 64 moved the "
        f"running means by up to {r64['mean_shift_std']:.2f} std and the variances by {r64['var_change_rel']:.0%} "
        f"(eval accuracy {acc_before:.1%} → {r64['accuracy_after']:.1%}); batches of 1: "
        f"{r1['mean_shift_std']:.2f} std, {r1['var_change_rel']:.0%} (→ {r1['accuracy_after']:.1%}). "
        f"The same pass in eval mode changed nothing",
        HOLDS if ok else FAILS,
        {
            "accuracy_before": acc_before,
            "eval_pass_unchanged": eval_unchanged,
            "train_pass_batch_64": r64,
            "train_pass_batch_1": r1,
        },
    )


def c5_output_spread(ctx: Context) -> Claim:
    """C5: the same input gives different outputs on every call in training mode, identical ones in eval.

    >>> c = c5_output_spread(untrained_context())
    >>> c.verdict, c.values["eval"]["identical_calls"], c.values["train"]["identical_calls"]
    ('holds', True, False)
    """
    x = ctx.x_test[: ctx.train_batch_size]
    y = ctx.y_test[: ctx.train_batch_size]
    results = {}
    for mode in ("train", "eval"):
        model = copy.deepcopy(ctx.cnn)
        torch.manual_seed(ctx.seed + 13)
        with (te.training(model) if mode == "train" else te.evaluating(model)), torch.no_grad():
            outs = torch.stack([torch.softmax(model(x), 1) for _ in range(ctx.repeats)])
        preds = outs.argmax(2)
        results[mode] = {
            "identical_calls": all(torch.equal(outs[0], o) for o in outs[1:]),
            "max_prob_range": float((outs.amax(0) - outs.amin(0)).max()),
            "mean_prob_std": float(outs.std(0).mean()),
            "inputs_with_changing_prediction": int((preds != preds[0]).any(0).sum()),
            "true_class_prob": outs[:, torch.arange(len(y)), y].T.tolist(),
        }
    tr, ev = results["train"], results["eval"]
    ok = (not tr["identical_calls"]) and tr["max_prob_range"] > 0 and ev["identical_calls"]
    return Claim(
        "C5",
        "training-mode outputs are not fixed",
        "Without model.eval(), outputs are not fixed: the same input can give a different result on every call.",
        "In training mode Dropout draws a new mask on every call and BatchNorm's output depends on the rest of "
        "the batch; in eval mode the output is a deterministic function of the input.",
        f"{ctx.repeats} calls on the same {len(x)} images: training mode — class probabilities spread by up to "
        f"{tr['max_prob_range']:.2f} (mean std {tr['mean_prob_std']:.3f}), {tr['inputs_with_changing_prediction']}"
        f"/{len(x)} predictions changed; eval mode — all calls bit-identical "
        f"({'yes' if ev['identical_calls'] else 'NO'})",
        HOLDS if ok else FAILS,
        {m: {k: v for k, v in r.items() if k != "true_class_prob"} for m, r in results.items()}
        | {"calls": ctx.repeats, "images": len(x)},
        {"train": tr["true_class_prob"], "eval": ev["true_class_prob"]},
    )


def _colour_shift(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean absolute difference of per-image, per-channel mean colour, in 8-bit levels (0–255)."""
    return float((out.mean((2, 3)) - ref.mean((2, 3))).abs().mean() * 255)


def c6_small_batches(ctx: Context) -> Claim:
    """C6: small batches in training mode distort the output: accuracy vs batch size, autoencoder colours.

    The verdict needs a trained model (an untrained one is at chance in both modes):

    >>> c = c6_small_batches(untrained_context())
    >>> c.values["batch_sizes"]
    [1, 2, 4, 8, 16]
    """
    n = ctx.sweep_images
    x, y = ctx.x_test[:n], ctx.y_test[:n]
    sizes = [2**k for k in range(int(math.log2(min(256, n))) + 1)]
    train_model = copy.deepcopy(ctx.cnn)  # training-mode passes change its running statistics (C4)
    torch.manual_seed(ctx.seed + 17)
    acc_train = {bs: _accuracy_at(train_model, x, y, bs, train=True) for bs in sizes}
    acc_eval = {bs: _accuracy_at(ctx.cnn, x, y, bs, train=False) for bs in sizes}

    ae = copy.deepcopy(ctx.autoencoder)
    imgs = ctx.ae_test
    with te.evaluating(ae), torch.no_grad():
        out_eval = torch.cat([ae(xb) for xb in _chunks(imgs, 64)])
    with te.training(ae), torch.no_grad():
        out_train1 = torch.cat([ae(xb) for xb in _chunks(imgs, 1)])
        out_train_big = torch.cat([ae(xb) for xb in _chunks(imgs, 64)])
    shift = {
        "eval": _colour_shift(out_eval, imgs),
        "train_batch_1": _colour_shift(out_train1, imgs),
        "train_batch_64": _colour_shift(out_train_big, imgs),
    }
    mse = {
        "eval": float(F.mse_loss(out_eval, imgs)),
        "train_batch_1": float(F.mse_loss(out_train1, imgs)),
        "train_batch_64": float(F.mse_loss(out_train_big, imgs)),
    }
    a_eval = min(acc_eval.values())
    ok = acc_train[1] < a_eval - 0.2 and shift["train_batch_1"] > 2 * shift["eval"]
    big = sizes[-1]
    return Claim(
        "C6",
        "small batches in training mode distort outputs",
        "Without model.eval(), a small test batch (batch size 1 in the extreme) makes BatchNorm distort the "
        "output badly; e.g. generated images come out with wrong colours.",
        "In training mode each BatchNorm channel is normalised by the statistics of the batch itself; with one "
        "image those are that image's own per-channel mean and variance, so its overall colour, brightness and "
        "contrast are normalised away. Eval mode does not depend on the batch at all.",
        f"accuracy at batch size 1: training mode {acc_train[1]:.1%} vs eval {acc_eval[1]:.1%} "
        f"(batch {big}: {acc_train[big]:.1%} vs {acc_eval[big]:.1%}); eval accuracy the same at every batch size "
        f"({min(acc_eval.values()):.1%}–{max(acc_eval.values()):.1%}). Autoencoder colour shift: "
        f"{shift['train_batch_1']:.0f}/255 at batch 1 in training mode vs {shift['eval']:.1f}/255 in eval",
        HOLDS if ok else FAILS,
        {
            "batch_sizes": sizes,
            "accuracy_train_mode": [acc_train[b] for b in sizes],
            "accuracy_eval_mode": [acc_eval[b] for b in sizes],
            "images": n,
            "classes": int(ctx.cnn.fc.out_features),
            "autoencoder_colour_shift_255": shift,
            "autoencoder_mse": mse,
        },
        {"ae_input": imgs[:8], "ae_eval": out_eval[:8], "ae_train1": out_train1[:8], "ae_train64": out_train_big[:8]},
    )


def c7_dropout(ctx: Context, drop: dict[str, Any]) -> Claim:
    """C7: Dropout(0.5) drops about half the units — and doubles the rest; identity in eval.

    >>> ctx = untrained_context()
    >>> c = c7_dropout(ctx, _dropout_in_model(ctx))
    >>> c.verdict, c.values["kept_value"], c.values["eval_identity"]
    ('differs', 2.0, True)
    """
    p = 0.5
    layer = nn.Dropout(p)
    units = 200_000
    x = torch.ones(units)
    torch.manual_seed(ctx.seed + 19)
    with te.training(layer):
        a, b = layer(x), layer(x)
    with te.evaluating(layer):
        e = layer(x)
    dropped = int((a == 0).sum())
    kept_values = torch.unique(a[a != 0])
    both_dropped = float(((a == 0) & (b == 0)).float().mean())
    mean_out = float(a.mean())
    scale = float(kept_values.max())
    rate_ok = _binomial_ok(dropped, units, p)
    inverted = bool(len(kept_values) == 1 and abs(scale - 1 / (1 - p)) < 1e-6)
    model_scale_ok = abs(drop["kept_scale_max"] - 1 / (1 - drop["p"])) < 1e-4 and abs(
        drop["kept_scale_min"] - 1 / (1 - drop["p"])) < 1e-4
    identity = torch.equal(e, x)
    if not (rate_ok and identity):
        verdict = FAILS
    else:
        verdict = DIFFERS if inverted and model_scale_ok else HOLDS
    return Claim(
        "C7",
        "Dropout(0.5) drops half — and scales the rest by 2",
        "nn.Dropout(0.5) drops each unit with probability 0.5 on every training iteration; it is used against "
        "over-fitting.",
        "PyTorch uses inverted dropout: in training mode each unit is zeroed with probability p and every kept "
        "unit is multiplied by 1/(1−p), so the expected activation is unchanged and eval mode is the identity "
        "(no rescaling at test time). It does not simply halve what flows on.",
        f"on {units} ones: {dropped / units:.2%} dropped (binomial 5σ band {'met' if rate_ok else 'MISSED'}), "
        f"every kept unit = {scale:g} = 1/(1−p), mean output {mean_out:.3f}; a new mask each call "
        f"({both_dropped:.1%} dropped twice ≈ p²); eval: identity ({'yes' if identity else 'NO'}). In the trained "
        f"CNN: {drop['drop_rate']:.1%} dropped, kept units ×{drop['kept_scale_max']:.4f}",
        verdict,
        {
            "p": p,
            "units": units,
            "drop_rate": dropped / units,
            "binomial_5sigma_ok": rate_ok,
            "kept_value": scale,
            "mean_output": mean_out,
            "dropped_in_both_calls": both_dropped,
            "eval_identity": identity,
            "cnn_drop_rate": drop["drop_rate"],
            "cnn_kept_scale": [drop["kept_scale_min"], drop["kept_scale_max"]],
        },
        {"sample": a[:400].view(20, 20).tolist()},
    )


class _LayerNormMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(768, 64), nn.LayerNorm(64), nn.GELU(), nn.Linear(64, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _RReLUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(768, 64), nn.RReLU(), nn.Linear(64, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def c8_rule_of_thumb(ctx: Context) -> Claim:
    """C8: train()/eval() matter exactly when the model has mode-sensitive layers (BatchNorm, Dropout, and kin).

    >>> c8_rule_of_thumb(untrained_context()).verdict
    'holds'
    """
    torch.manual_seed(ctx.seed + 23)
    models = {"DemoCNN (BatchNorm + Dropout)": copy.deepcopy(ctx.cnn), "MLP with LayerNorm + GELU": _LayerNormMLP(),
              "MLP with RReLU only": _RReLUNet()}
    x = ctx.x_test[:32]
    rows = {}
    for name, model in models.items():
        with te.training(model), torch.no_grad():
            out_train = model(x)
        with te.evaluating(model), torch.no_grad():
            out_eval = model(x)
        rows[name] = {
            "mode_sensitive": [s.type_name for s in te.mode_sensitive(model)],
            "max_train_eval_difference": float((out_train - out_eval).abs().max()),
        }
    cnn, ln, rr = rows.values()
    ok = (cnn["max_train_eval_difference"] > 0 and ln["max_train_eval_difference"] == 0 and not ln["mode_sensitive"]
          and rr["max_train_eval_difference"] > 0 and rr["mode_sensitive"])
    return Claim(
        "C8",
        "rule of thumb: train() to train, eval() to test",
        "Any model with BatchNorm or Dropout needs model.train() while training and model.eval() while testing.",
        "Right, and wider: every layer that reads self.training — all BatchNorm/InstanceNorm variants with "
        "running statistics, every Dropout variant, RReLU, the dropout inside attention, Transformer and RNN "
        "layers, custom modules — makes the modes matter. te.mode_sensitive(model) lists them.",
        "train vs eval outputs on the same input: " + "; ".join(
            f"{name}: {len(r['mode_sensitive'])} mode-sensitive layer(s), max |Δ| {r['max_train_eval_difference']:.3g}"
            for name, r in rows.items()
        ),
        HOLDS if ok else FAILS,
        {"models": rows},
    )


class _FunctionalDropoutNet(nn.Module):
    """The trap: ``F.dropout(x, 0.5)`` without ``training=self.training``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.fc(x), 0.5)


class _FixedFunctionalDropoutNet(_FunctionalDropoutNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.fc(x), 0.5, self.training)


def t1_functional_dropout(ctx: Context) -> Claim:
    """T1: ``F.dropout(x, 0.5)`` ignores ``model.eval()``; passing ``self.training`` fixes it.

    >>> c = t1_functional_dropout(untrained_context())
    >>> c.verdict, "TE214" in c.values["te_check_codes_trap"]
    ('holds', True)
    """
    torch.manual_seed(ctx.seed + 29)
    bad, good = _FunctionalDropoutNet().eval(), _FixedFunctionalDropoutNet().eval()
    good.load_state_dict(bad.state_dict())
    x = torch.randn(512, 16)
    with torch.no_grad():
        fc_out = bad.fc(x)
        b1, b2 = bad(x), bad(x)
        g1, g2 = good(x), good(x)
    live = fc_out != 0
    bad_rate = float(((b1 == 0) & live).sum() / live.sum())
    bad_differs = not torch.equal(b1, b2)
    good_identity = torch.equal(g1, fc_out) and torch.equal(g1, g2)
    ok = bad_differs and bad_rate > 0.4 and good_identity
    found_bad = te.check(bad, x[:8], gap_threshold=None, train_checks=False).codes()
    found_good = te.check(good, x[:8], gap_threshold=None, train_checks=False).codes()
    return Claim(
        "T1",
        "F.dropout stays active after eval()",
        "(beyond the article) The functional forms do not follow the module's mode by themselves.",
        "torch.nn.functional.dropout has training=True by default, so F.dropout(x, 0.5) inside forward keeps "
        "dropping after model.eval(). Write F.dropout(x, p, self.training) or use an nn.Dropout module.",
        f"after model.eval(): F.dropout(x, 0.5) still zeroed {bad_rate:.1%} of the units and two calls differed "
        f"({'yes' if bad_differs else 'no'}); F.dropout(x, 0.5, self.training) was the identity "
        f"({'yes' if good_identity else 'NO'}); te.check reports {', '.join(found_bad) or 'nothing'} on the trap, "
        f"{', '.join(found_good) or 'nothing'} on the fix",
        HOLDS if ok else FAILS,
        {"eval_drop_rate": bad_rate, "calls_differ": bad_differs, "fixed_is_identity": good_identity,
         "te_check_codes_trap": found_bad, "te_check_codes_fixed": found_good},
    )


def t2_no_grad(ctx: Context) -> Claim:
    """T2: ``torch.no_grad()`` turns off gradients only; the model stays in training mode.

    >>> t2_no_grad(untrained_context()).values["training_flag_under_no_grad"]
    True
    """
    model = copy.deepcopy(ctx.cnn).train()
    x = ctx.x_test[:64]
    before = _buffers(model)
    torch.manual_seed(ctx.seed + 31)
    with torch.no_grad():
        still_training = model.training and all(te.modes(model).values())
        o1, o2 = model(x), model(x)
    stats_changed = not _buffers_equal(before, _buffers(model))
    with te.inference(model):
        i1, i2 = model(x), model(x)
        flag_inside = model.training
    ok = still_training and not torch.equal(o1, o2) and stats_changed and torch.equal(i1, i2) and not flag_inside
    return Claim(
        "T2",
        "torch.no_grad() does not switch modes",
        "(beyond the article) Gradient tracking and the mode are separate switches.",
        "torch.no_grad() and torch.inference_mode() switch off gradient tracking only; they do not call eval(). "
        "Inference needs both: model.eval() plus torch.inference_mode(), or te.inference(model).",
        f"inside torch.no_grad(): model.training = {still_training}, outputs requires_grad = {o1.requires_grad}, "
        f"two calls differed ({'yes' if not torch.equal(o1, o2) else 'no'}), running statistics changed "
        f"({'yes' if stats_changed else 'no'}); inside te.inference(model): calls identical "
        f"({'yes' if torch.equal(i1, i2) else 'NO'})",
        HOLDS if ok else FAILS,
        {"training_flag_under_no_grad": still_training, "outputs_differ": not torch.equal(o1, o2),
         "running_stats_changed": stats_changed, "te_inference_identical": torch.equal(i1, i2)},
    )
