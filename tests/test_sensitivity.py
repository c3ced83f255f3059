"""te.mode_sensitive / te.classify: the built-in table and custom-module detection."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

import traineval as te


def kind(module: nn.Module) -> str | None:
    found = te.classify(module)
    return None if found is None else found.kind


# ------------------------------------------------------------------------------- table
def test_every_batchnorm_variant_with_running_stats():
    for m in [nn.BatchNorm1d(3), nn.BatchNorm2d(3), nn.BatchNorm3d(3), nn.SyncBatchNorm(3),
              nn.LazyBatchNorm1d(), nn.LazyBatchNorm2d(), nn.LazyBatchNorm3d()]:
        assert kind(m) == "batchnorm", m


def test_norms_without_running_stats_are_not_sensitive():
    assert kind(nn.BatchNorm2d(3, track_running_stats=False)) is None
    assert kind(nn.InstanceNorm2d(3)) is None  # default: no running stats
    for m in [nn.LayerNorm(3), nn.GroupNorm(1, 3), nn.LocalResponseNorm(2)]:
        assert kind(m) is None


def test_instancenorm_tracking_running_stats():
    for m in [nn.InstanceNorm1d(3, track_running_stats=True), nn.InstanceNorm2d(3, track_running_stats=True),
              nn.InstanceNorm3d(3, track_running_stats=True), nn.LazyInstanceNorm2d(track_running_stats=True)]:
        assert kind(m) == "instancenorm"


def test_whole_dropout_family_when_p_positive():
    for cls in [nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout]:
        assert kind(cls(0.3)) == "dropout", cls
        assert kind(cls(0.0)) is None, cls


def test_rrelu_attention_recurrent():
    assert kind(nn.RReLU()) == "activation"
    assert kind(nn.MultiheadAttention(8, 2, dropout=0.1)) == "attention"
    assert kind(nn.MultiheadAttention(8, 2)) is None
    assert kind(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1)) == "attention"
    assert kind(nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0)) is None
    assert kind(nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 2, enable_nested_tensor=False)) is None
    for cls in [nn.RNN, nn.LSTM, nn.GRU]:
        assert kind(cls(4, 4, num_layers=2, dropout=0.2)) == "recurrent"
        assert kind(cls(4, 4, num_layers=2)) is None
        assert kind(cls(4, 4, num_layers=1)) is None


def test_spectral_norm_both_apis():
    from torch.nn.utils import spectral_norm
    from torch.nn.utils.parametrizations import spectral_norm as sn_param

    old = spectral_norm(nn.Linear(3, 3))
    assert kind(old) == "spectral_norm"
    new = sn_param(nn.Linear(3, 3))
    found = {s.kind for s in te.mode_sensitive(new)}
    assert found == {"spectral_norm"}
    # and it really depends on the mode: u is updated only in training
    with torch.no_grad():  # move the weight so that the power iteration has work to do
        new.parametrizations.weight.original.add_(torch.randn(3, 3))
    u0 = new.parametrizations.weight[0]._u.clone()
    new.eval()(torch.randn(2, 3))
    assert torch.equal(u0, new.parametrizations.weight[0]._u)
    new.train()(torch.randn(2, 3))
    assert not torch.equal(u0, new.parametrizations.weight[0]._u)


def test_qat_fused_conv_bn():
    from torch.ao.nn.intrinsic.qat import ConvBn2d
    from torch.ao.quantization import get_default_qat_qconfig

    m = ConvBn2d(3, 4, 3, qconfig=get_default_qat_qconfig("fbgemm"))
    kinds = {s.name: s.kind for s in te.mode_sensitive(m)}
    assert kinds[""] == "qat" and kinds["bn"] == "batchnorm"


def test_plain_layers_and_containers_are_not_sensitive():
    model = nn.Sequential(nn.Conv2d(3, 3, 3), nn.ReLU(), nn.Linear(3, 3), nn.Embedding(3, 3),
                          nn.ModuleList([nn.GELU()]), nn.Identity(), nn.Flatten())
    assert te.mode_sensitive(model) == []


def test_table_matches_pytorch_behaviour():
    """Independent truth: a module is in the table iff train and eval outputs differ."""
    torch.manual_seed(0)
    x = torch.randn(8, 4, 5)
    cases = [nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Dropout1d(0.5), nn.AlphaDropout(0.5), nn.RReLU(),
             nn.InstanceNorm1d(4, track_running_stats=True), nn.LayerNorm(5), nn.GELU(),
             nn.BatchNorm1d(4, track_running_stats=False), nn.Dropout(0.0)]
    for m in cases:
        m.train()
        y_train = m(x)
        m.eval()
        y_eval = m(x)
        assert (kind(m) is not None) == (not torch.allclose(y_train, y_eval)), m


# ------------------------------------------------------------------------ custom modules
class ReadsTraining(nn.Module):
    def forward(self, x):
        return F.dropout(x, 0.1, self.training)


class ReadsInHelper(nn.Module):
    def forward(self, x):
        return self._noise(x)

    def _noise(self, x):
        if self.training:
            return x + torch.randn_like(x)
        return x


class OnlyMentionsTraining(nn.Module):
    """Docstring: self.training is discussed here but never read."""

    def forward(self, x):
        # if self.training: we used to add noise
        note = "self.training"
        return x * len(note)


class NamedOtherwise(nn.Module):
    def forward(me, x):
        return x if not me.training else x * 2


class SubOfCustom(ReadsTraining):
    def forward(self, x):
        return super().forward(x) + 1


class SetsTrainingOnly(nn.Module):
    def forward(self, x):
        self.other.training = False  # writes someone else's flag, does not read its own
        return x


class ReadsChildFlag(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(2, 2)

    def forward(self, x):
        return x if self.inner.training else -x


class DropPathLike(nn.Module):
    def __init__(self, p=0.1):
        super().__init__()
        self.p = p

    def forward(self, x):
        return drop_path(x, self.p, getattr(self, "training"))  # noqa: B009 - the getattr form is what is tested


def drop_path(x, p, training):
    return x


class MyBN(nn.BatchNorm2d):
    def forward(self, x):  # subclass with its own forward: still a BatchNorm
        return super().forward(x) * 2


class MyBNNoRunning(nn.BatchNorm2d):
    def forward(self, x):
        y = super().forward(x)
        return y + (0.1 if self.training else 0.0)


def test_custom_detection():
    assert kind(ReadsTraining()) == "custom"
    assert kind(ReadsInHelper()) == "custom"
    assert kind(NamedOtherwise()) == "custom"
    assert kind(SubOfCustom()) == "custom"
    assert kind(DropPathLike()) == "custom"
    assert kind(OnlyMentionsTraining()) is None
    assert kind(SetsTrainingOnly()) is None
    assert kind(ReadsChildFlag()) is None  # reads another module's flag, not its own
    assert kind(MyBN(3)) == "batchnorm"
    assert kind(MyBNNoRunning(3, track_running_stats=False)) == "custom"


def test_reason_names_the_method_and_line():
    found = te.classify(ReadsInHelper())
    assert "_noise" in found.reason and "line" in found.reason


def test_source_unavailable_is_unknown_not_guessed():
    namespace: dict = {"nn": nn}
    exec("class Dyn(nn.Module):\n    def forward(self, x):\n        return x\n", namespace)
    found = te.classify(namespace["Dyn"]())
    assert found is not None and found.kind == "unknown" and "unavailable" in found.reason
    assert te.mode_sensitive(nn.Sequential(namespace["Dyn"]()), include_unknown=False) == []


def test_names_and_order_in_a_real_model():
    from traineval.examples import small_resnet, transformer_classifier

    names = [s.name for s in te.mode_sensitive(small_resnet())]
    assert names[0] == "stem.1" and names[-1] == "dropout" and len(names) == 10
    kinds = {s.kind for s in te.mode_sensitive(transformer_classifier())}
    assert kinds == {"attention", "dropout"}


def test_classify_rejects_non_module():
    import pytest

    with pytest.raises(TypeError, match="expected an nn.Module for module, got int"):
        te.classify(3)
