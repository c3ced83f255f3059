"""``te.check`` on Hugging Face generative models whose outputs carry KV caches.

The caches (``DynamicCache``, ``EncoderDecoderCache``) have no value equality; they are
compared by the tensors they hold. A correct model passes; the same model with a planted
``F.dropout`` that ignores the mode fails with TE210 (random in eval) and TE214 (functional dropout), at that layer.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import traineval as te

T = pytest.importorskip("transformers")


def _gpt2() -> nn.Module:
    return T.GPT2LMHeadModel(T.GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=50, n_positions=32,
                                          bos_token_id=0, eos_token_id=0))


def _llama() -> nn.Module:
    return T.LlamaForCausalLM(T.LlamaConfig(num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                            hidden_size=16, intermediate_size=32, vocab_size=50))


def _t5() -> nn.Module:
    return T.T5ForConditionalGeneration(T.T5Config(num_layers=1, num_heads=2, d_model=16, d_kv=8, d_ff=32,
                                                   vocab_size=50))


def _bart() -> nn.Module:
    return T.BartForConditionalGeneration(T.BartConfig(
        encoder_layers=1, decoder_layers=1, d_model=16, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, vocab_size=50, max_position_embeddings=32))


MODELS = {"gpt2": (_gpt2, False), "llama": (_llama, False), "t5": (_t5, True), "bart": (_bart, True)}


def _example(seq2seq: bool) -> Any:
    ids = torch.randint(3, 50, (4, 8), generator=torch.Generator().manual_seed(0))
    return {"input_ids": ids, "decoder_input_ids": ids} if seq2seq else ids


class _LeakyDropout(nn.Module):
    """Wraps a layer and applies ``F.dropout`` without ``training=``: active in eval too."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.inner(x), 0.3)


@pytest.mark.parametrize("name", list(MODELS))
def test_decoder_models_with_caches_pass_when_correct(name: str) -> None:
    build, seq2seq = MODELS[name]
    torch.manual_seed(0)
    model = build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = te.check(model, _example(seq2seq), gap_threshold=None)
    assert report.ok, [(d.code, d.where, d.message) for d in report.errors]
    assert model.training  # restored


@pytest.mark.parametrize("name", list(MODELS))
def test_a_planted_mode_blind_dropout_still_fails(name: str) -> None:
    build, seq2seq = MODELS[name]
    torch.manual_seed(0)
    model = build()
    model.lm_head = _LeakyDropout(model.lm_head)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = te.check(model, _example(seq2seq), gap_threshold=None)
    found = {(d.code, d.where) for d in report.errors}
    assert {("TE210", "lm_head"), ("TE214", "lm_head")} <= found, found  # random in eval; F.dropout blind to mode
