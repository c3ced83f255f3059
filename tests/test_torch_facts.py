"""The facts about torch objects defined once in ``traineval._torch`` and ``traineval._rng``."""

from __future__ import annotations

import dataclasses
import random
from collections import namedtuple

import numpy as np
import pytest
import torch
import torch.nn as nn

import traineval as te
from traineval import _rng, _torch


class Recorder(nn.Module):
    """Returns what it was called with, so the test sees how a batch was fed."""

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple:
        return (x, y)


Pair = namedtuple("Pair", "x y")


@dataclasses.dataclass
class Fields:
    x: torch.Tensor
    y: torch.Tensor


A, B = torch.ones(2), torch.zeros(2)


@pytest.mark.parametrize(
    ("batch", "unpack", "expected"),
    [
        (A, "first", (A, None)),
        ((A, B), "first", (A, None)),
        ([A, B], "first", (A, None)),
        (Pair(A, B), "first", (A, None)),
        ({"x": A, "y": B}, "first", (A, B)),
        (Fields(A, B), "first", (A, B)),
        ((A, B), "all", (A, B)),
        ({"x": A}, "all", (A, None)),
        (A, "all", (A, None)),
    ],
    ids=["tensor", "tuple", "list", "namedtuple", "dict", "dataclass", "tuple-all", "dict-all", "tensor-all"],
)
def test_feed_every_batch_shape(batch: object, unpack: str, expected: tuple) -> None:
    got = _torch.feed(Recorder(), batch, unpack=unpack)  # type: ignore[arg-type]  # parametrised Literal
    assert all((g is e) if e is None else torch.equal(g, e) for g, e in zip(got, expected, strict=True))


def test_feed_all_passes_lists_and_namedtuples_as_one_argument() -> None:
    seen = []
    model = nn.Module()
    model.forward = lambda x: seen.append(x)  # type: ignore[method-assign]  # a recording forward
    for batch in ([A, B], Pair(A, B), Fields(A, B)):
        _torch.feed(model, batch, unpack="all")
    assert [type(s) for s in seen] == [list, Pair, Fields]


def test_feed_through_a_user_forward() -> None:
    out = _torch.feed(nn.Linear(2, 1), {"pixels": torch.ones(3, 2)}, forward=lambda m, b: m(b["pixels"]))
    assert out.shape == (3, 1)


def test_a_batch_the_forward_cannot_take_says_what_was_tried_and_suggests_forward() -> None:
    with pytest.raises(te.TraineValError, match=r"model\(\*\*batch\) with the keys 'input_ids', 'labels'.*forward="):
        _torch.feed(nn.Linear(2, 1), {"input_ids": torch.ones(3, 2), "labels": torch.ones(3)})


def test_a_type_error_inside_the_model_is_left_alone() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise TypeError("deep inside")

    with pytest.raises(TypeError, match="^deep inside$"):
        _torch.feed(Broken(), A)


def test_empty_and_unknown_batches_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="empty tuple/list"):
        _torch.feed(Recorder(), ())
    with pytest.raises(TypeError, match="cannot feed a batch of type int.*forward="):
        _torch.feed(Recorder(), 3)


def test_to_device_keeps_containers() -> None:
    cpu = torch.device("cpu")
    moved = _torch.to_device({"a": (A, [B]), "p": Pair(A, B), "n": 3}, cpu)
    assert isinstance(moved["p"], Pair) and moved["n"] == 3 and moved["a"][1][0] is B


def test_unwrap_wrappers_but_not_fsdp() -> None:
    inner = nn.Linear(2, 2)
    assert _torch.unwrap(nn.DataParallel(inner)) is inner
    assert _torch.unwrap(torch.compile(nn.DataParallel(inner))) is inner  # compiled lazily: nothing runs
    assert _torch.fsdp_kind(inner) is None
    assert _torch.device(inner) == torch.device("cpu") and _torch.device(nn.ReLU()) is None


def test_not_distributed() -> None:
    assert _torch.distributed() == (None, 0, 1)
    assert _torch.collective_device(None) == torch.device("cpu")


def test_rng_state_restores_every_generator() -> None:
    state = _rng.RngState()
    draws = (torch.rand(3), random.random(), np.random.rand())
    state.restore()
    again = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(draws[0], again[0]) and draws[1:] == again[1:]
    state = _rng.RngState()
    expected = torch.rand(3)
    state.restore()
    with _rng.RngState():  # reseeding and drawing inside the block leaves the stream where it was
        _rng.RngState.seed(123)
        torch.rand(5)
    assert torch.equal(torch.rand(3), expected)
