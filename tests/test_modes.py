"""te.modes / te.set_modes / te.evaluating / te.training / te.inference."""

from __future__ import annotations

import copy
import random
import threading

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import traineval as te
from traineval.examples import small_resnet, transformer_classifier


def flags(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def mixed_model() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Sequential(nn.Dropout(0.5), nn.ReLU()))
    model[1].eval()
    model[2][0].eval()
    return model


# --------------------------------------------------------------------------- modes / set_modes
def test_modes_lists_every_named_module_with_root_as_empty_string():
    model = mixed_model()
    assert te.modes(model) == {"": True, "0": True, "1": False, "2": True, "2.0": False, "2.1": True}


def test_modes_of_an_empty_model():
    assert te.modes(nn.Module()) == {"": True}
    with te.evaluating(nn.Sequential()) as m:
        assert te.modes(m) == {"": False}


def test_set_modes_restores_exact_snapshot():
    model = mixed_model()
    snap = te.modes(model)
    model.eval()
    te.set_modes(model, snap)
    assert te.modes(model) == snap


def test_set_modes_strict_mismatch_changes_nothing_and_names_the_difference():
    model = mixed_model()
    before = te.modes(model)
    snap = {**before, "9": False}
    snap.pop("2.1")
    snap[""] = False
    with pytest.raises(ValueError, match=r"missing from the snapshot: '2.1'.*not in the model: '9'"):
        te.set_modes(model, snap)
    assert te.modes(model) == before
    te.set_modes(model, snap, strict=False)
    assert model.training is False and model[2][1].training is True


def test_set_modes_rejects_non_bool_and_non_mapping():
    model = mixed_model()
    with pytest.raises(ValueError, match="booleans"):
        te.set_modes(model, {"": 1})
    with pytest.raises(TypeError, match="snapshot dict"):
        te.set_modes(model, [True])  # type: ignore[arg-type]


@pytest.mark.parametrize("fn", [te.modes, te.describe, te.mode_sensitive])
def test_not_a_module_is_a_type_error_naming_the_value(fn):
    with pytest.raises(TypeError, match=r"expected an nn.Module for model, got list"):
        fn([nn.Linear(1, 1)])
    with pytest.raises(te.TraineValError):
        fn("model")


def test_shared_module_appears_under_both_names():
    shared = nn.Dropout(0.1)
    model = nn.Sequential(shared, nn.Sequential(shared))
    assert set(te.modes(model)) == {"", "0", "1", "1.0"}
    with te.evaluating(model):
        assert shared.training is False
    assert shared.training is True


# ------------------------------------------------------------------------------ contexts
@pytest.mark.parametrize("ctx, inside", [(te.evaluating, False), (te.training, True), (te.inference, False)])
def test_context_switches_every_module_and_restores_mixed_state(ctx, inside):
    model = mixed_model()
    before = te.modes(model)
    with ctx(model) as m:
        assert m is model
        assert all(f is inside for f in flags(model))
    assert te.modes(model) == before


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
@pytest.mark.parametrize("ctx", [te.evaluating, te.training, te.inference])
def test_restores_on_exception_and_keyboard_interrupt(ctx, exc):
    model = mixed_model()
    before = te.modes(model)
    with pytest.raises(type(exc)), ctx(model):
        raise exc
    assert te.modes(model) == before


def test_contexts_nest():
    model = mixed_model()
    before = te.modes(model)
    with te.evaluating(model):
        with te.training(model):
            assert all(flags(model))
            with te.evaluating(model[2]):
                assert not model[2][0].training and model[1].training
            assert all(flags(model))
        assert not any(flags(model))
    assert te.modes(model) == before


def test_several_models_at_once_and_tuple_returned():
    a, b = mixed_model(), transformer_classifier()
    b.eval()
    ba, bb = te.modes(a), te.modes(b)
    with te.training(a, b) as (x, y):
        assert x is a and y is b and all(flags(a)) and all(flags(b))
    assert te.modes(a) == ba and te.modes(b) == bb


def test_decorator_use_and_recursion():
    model = mixed_model()
    before = te.modes(model)

    @te.evaluating(model)
    def validate(depth: int) -> bool:
        assert not model.training
        return validate(depth - 1) if depth else model[2][1].training

    assert validate(3) is False
    assert te.modes(model) == before


def test_decorator_shared_between_threads():
    model = small_resnet()
    before = te.modes(model)
    deco = te.evaluating(model)
    errors = []

    @deco
    def work():
        if model.training:
            errors.append("training inside")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert te.modes(model) == before


def test_inference_disables_grad_and_restores_it():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    x = torch.ones(2, 3)
    with te.inference(model):
        assert torch.is_inference_mode_enabled()
        y1, y2 = model(x), model(x)
    assert not torch.is_inference_mode_enabled()
    assert torch.equal(y1, y2) and not y1.requires_grad
    assert model.training


def test_evaluating_does_not_touch_grad_mode():
    model = nn.Linear(2, 2)
    with te.evaluating(model):
        assert torch.is_grad_enabled()
        assert model(torch.ones(1, 2)).requires_grad


def test_eval_outputs_are_those_of_pytorch_eval():
    model = small_resnet()
    x = torch.randn(4, 3, 32, 32)
    model(x)  # move running stats off their init
    with te.evaluating(model):
        ours = model(x)
    ref = copy.deepcopy(model).eval()(x)
    assert torch.equal(ours, ref)


def test_module_added_inside_context_keeps_its_mode_removed_one_is_restored():
    model = nn.Sequential(nn.Dropout(0.1), nn.Dropout(0.2))
    removed = model[1]
    with te.evaluating(model):
        model.append(nn.Dropout(0.3))  # new module, created in train mode
        del model[1]
    assert removed.training is True  # restored although no longer in the model
    assert model[0].training is True
    assert model[1].training is True  # the added one: as it was created


class RecordingTrain(nn.Module):
    """A submodule whose train() override keeps one child in eval (e.g. a frozen part)."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.BatchNorm1d(2)
        self.live = nn.Dropout(0.5)
        self.calls: list[bool] = []

    def train(self, mode: bool = True) -> RecordingTrain:
        self.calls.append(mode)
        super().train(mode)
        self.frozen.train(False)
        return self


def test_train_override_is_respected_on_entry_and_state_restored_on_exit():
    model = nn.Sequential(nn.Linear(2, 2), RecordingTrain())
    model.eval()
    before = te.modes(model)
    with te.training(model):
        assert model[1].calls[-1] is True
        assert model[1].frozen.training is False  # the override's choice
        assert model[1].live.training is True
    assert te.modes(model) == before


class Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def train(self, mode: bool = True) -> Exploding:
        super().train(mode)
        raise RuntimeError("train() override failed")


def test_failure_inside_eval_call_on_entry_restores_everything():
    model = nn.Sequential(nn.Dropout(0.1), Exploding(), nn.Dropout(0.2))
    before = te.modes(model)
    with pytest.raises(RuntimeError, match="override failed"), te.evaluating(model):
        pytest.fail("body must not run")
    assert te.modes(model) == before


def test_second_model_not_a_module():
    with pytest.raises(TypeError, match="model #2, got int"):
        te.evaluating(nn.Linear(1, 1), 3)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=7, max_size=7), st.sampled_from([te.evaluating, te.training, te.inference]),
       st.booleans())
def test_property_any_mixed_state_is_restored_bit_for_bit(bits, ctx, fail):
    model = nn.Sequential(
        nn.Linear(2, 2), nn.Sequential(nn.BatchNorm1d(2), nn.Dropout(0.3)), nn.ModuleDict({"a": nn.RReLU()}),
        nn.GRU(2, 2, 2, dropout=0.1),
    )
    mods = list(model.modules())
    for m, b in zip(mods, bits, strict=False):
        m.training = b
    before = te.modes(model)
    try:
        with ctx(model):
            if fail:
                raise ValueError
    except ValueError:
        pass
    assert te.modes(model) == before


def test_random_nesting_depth_restores():
    rng = random.Random(0)
    model = mixed_model()
    before = te.modes(model)
    ctxs = [te.evaluating, te.training]

    def nest(depth: int) -> None:
        if depth == 0:
            return
        with rng.choice(ctxs)(model):
            nest(depth - 1)

    for _ in range(10):
        nest(rng.randint(1, 6))
    assert te.modes(model) == before
