"""attndilute.capture on ad-hoc models: a transformer, conv nets, tuple outputs; hooks and CKA."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import attndilute as ad
from attndilute.capture import (
    ActivationCapture,
    capture_activations,
    pool_activation,
    pool_grid,
    select_modules,
)
from attndilute.cka import MinibatchCKA
from attndilute.errors import AttnDiluteError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class TinyTransformer(nn.Module):
    """Token embedding + two ``nn.TransformerEncoderLayer`` (batch first) + a head."""

    def __init__(self, dim: int = 16, batch_first: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(4, dim)
        layer = nn.TransformerEncoderLayer(dim, nhead=2, dim_feedforward=32, dropout=0.1,
                                           batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 3)

    def forward(self, x, *, scale: float = 1.0):  # x (B, L, 4) or (L, B, 4)
        return self.head(self.encoder(self.embed(x) * scale))


class ConvNet(nn.Module):
    def __init__(self, conv=nn.Conv2d):
        super().__init__()
        torch.manual_seed(0)
        self.stem = conv(2, 4, 3, padding=1)
        self.down = conv(4, 6, 3, stride=2, padding=1)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.down(self.act(self.stem(x))))


class TupleBlock(nn.Module):
    """Returns ``(hidden, aux)`` like a Hugging Face layer."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(5, 5)

    def forward(self, x):
        return self.proj(x) + 1.0, x.sum()


class TupleNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.block = TupleBlock()
        self.attn = nn.MultiheadAttention(5, 1, batch_first=True)  # returns (out, weights)

    def forward(self, x):  # x (B, L, 5)
        h, _ = self.block(x)
        out, _ = self.attn(h, h, h)
        return out


def _raw_outputs(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, object]:
    """What each module returned, with plain hooks (the independent reference)."""
    raw: dict[str, object] = {}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: raw.setdefault(n, o)) for n in names]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return raw


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# ---------------------------------------------------------------- the three model kinds
def test_transformer_tokens_keep_mean_and_pooled():
    model = TinyTransformer().eval()
    x = torch.randn(5, 6, 4, generator=_gen(1))  # (B, L, 4)
    names = ["encoder.layers.0", "encoder.layers.1"]
    raw = _raw_outputs(model, x, names)
    kept = capture_activations(model, x, "encoder.layers.?")
    assert list(kept) == names
    mean = capture_activations(model, x, names, tokens="mean")
    pooled = capture_activations(model, x, names, tokens=3)
    for n in names:
        h = raw[n]  # (5, 6, 16)
        torch.testing.assert_close(kept[n], h.reshape(5, -1))
        torch.testing.assert_close(mean[n], h.mean(1))
        pairs = (h[:, 0::2] + h[:, 1::2]) / 2  # (B, 3, C): means of tokens (0,1), (2,3), (4,5)
        torch.testing.assert_close(pooled[n], pairs.transpose(1, 2).reshape(5, -1))
        assert not kept[n].requires_grad


def test_transformer_sequence_first_layout():
    model = TinyTransformer(batch_first=False).eval()
    x = torch.randn(6, 5, 4, generator=_gen(2))  # (L, B, 4)
    raw = _raw_outputs(model, x, ["encoder.layers.1"])["encoder.layers.1"]  # (L, B, C)
    got = capture_activations(model, x, ["encoder.layers.1"], tokens="mean", batch_first=False)
    torch.testing.assert_close(got["encoder.layers.1"], raw.mean(0))  # (B, C)


def test_conv_net_spatial_pooling_never_upsamples():
    model = ConvNet().eval()
    x = torch.randn(3, 2, 8, 6, generator=_gen(3))
    raw = _raw_outputs(model, x, ["stem", "down"])
    got = capture_activations(model, x, ["stem", "down"], pool=(4, 8))
    stem = raw["stem"]  # (3, 4, 8, 6) -> (3, 4, 4, 6): H pooled by 2, W kept (6 < 8)
    expected = (stem[:, :, 0::2] + stem[:, :, 1::2]) / 2
    torch.testing.assert_close(got["stem"], expected.reshape(3, -1))
    down = raw["down"]  # (3, 6, 4, 3): both axes shorter than or equal to the target, kept
    torch.testing.assert_close(got["down"], down.reshape(3, -1))
    kept = capture_activations(model, x, ["down", "act"])
    torch.testing.assert_close(kept["down"], down.reshape(3, -1))
    # a module called twice in one forward (the shared GELU) keeps its first output
    torch.testing.assert_close(kept["act"], nn.functional.gelu(stem).reshape(3, -1))


def test_conv3d_int_pool_and_channels_last_layout():
    model = ConvNet(nn.Conv3d).eval()
    x = torch.randn(2, 2, 4, 4, 6, generator=_gen(4))
    raw = _raw_outputs(model, x, ["stem"])["stem"]  # (2, 4, 4, 4, 6)
    got = capture_activations(model, x, ["stem"], pool=2)["stem"]
    expected = nn.functional.adaptive_avg_pool3d(raw, 2)
    torch.testing.assert_close(got, expected.reshape(2, -1))
    assert got.shape == (2, 4 * 8)
    last = pool_activation(raw.permute(0, 2, 3, 4, 1), pool=2, layout="channels_last")
    torch.testing.assert_close(last, got)
    one_d = pool_activation(torch.arange(8.0).reshape(1, 1, 8), pool=2, layout="channels_first")
    torch.testing.assert_close(one_d, torch.tensor([[1.5, 5.5]]))


def test_tuple_outputs_give_their_first_tensor():
    model = TupleNet().eval()
    x = torch.randn(4, 3, 5, generator=_gen(5))
    raw = _raw_outputs(model, x, ["block", "attn"])
    got = capture_activations(model, x, ["block", "attn"])
    torch.testing.assert_close(got["block"], raw["block"][0].reshape(4, -1))
    torch.testing.assert_close(got["attn"], raw["attn"][0].reshape(4, -1))  # not the weights


def test_dict_outputs_give_their_first_tensor():
    class DictOut(nn.Module):
        def forward(self, x):
            return {"loss": None, "hidden": 2 * x, "other": x}

    model = nn.Sequential(DictOut())
    x = torch.randn(4, 3, generator=_gen(6))
    torch.testing.assert_close(capture_activations(model, x, ["0"])["0"], 2 * x)


def test_half_precision_is_returned_as_float32():
    got = pool_activation(torch.ones(2, 3, 4, dtype=torch.bfloat16), tokens="mean")
    assert got.dtype == torch.float32 and got.shape == (2, 4)
    assert pool_activation(torch.ones(2, 5, dtype=torch.float64)).dtype == torch.float64


# ---------------------------------------------------------------- selection and options
def test_select_modules_names_globs_order_and_errors():
    model = TinyTransformer()
    got = select_modules(model, ["head", "encoder.layers.?"])
    assert got == ["head", "encoder.layers.0", "encoder.layers.1"]
    star = select_modules(model, "encoder.layers*")
    assert "encoder.layers" not in star  # a ModuleList has no forward
    assert star.index("encoder.layers.0.linear1") < star.index("encoder.layers.1")
    assert "" not in select_modules(model, "*")
    assert select_modules(model, ["head", "he*"]) == ["head"]
    with pytest.raises(AttnDiluteError, match="'blocks.*' matches no module"):
        select_modules(model, ["head", "blocks.*"])


def test_bad_options_are_refused_before_any_hook():
    model = TinyTransformer()
    for kwargs in ({"tokens": "max"}, {"tokens": 0}, {"layout": "nhwc"}, {"pool": 0}, {"pool": (2, "a")}):
        with pytest.raises(ValueError):
            ActivationCapture(model, ["head"], **kwargs)
    with pytest.raises(ValueError, match="2 axes"):
        pool_grid(torch.zeros(1, 1, 4, 4, 4), (2, 2))
    assert _no_hooks(model)


def test_layers_that_never_ran_are_reported():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(AttnDiluteError, match="never ran.*unused"):
        capture_activations(Skips(), torch.zeros(4, 3), ["used", "unused"])


def test_every_forward_starts_a_fresh_capture_and_forward_kwargs_pass_through():
    model = TinyTransformer().eval()
    x1, x2 = torch.randn(4, 6, 4, generator=_gen(7)), torch.randn(4, 6, 4, generator=_gen(8))
    with ActivationCapture(model, ["embed"]) as cap, torch.no_grad():
        model(x1)
        first = cap.activations["embed"]
        model(x2)  # the user's own call, not cap(...)
        second = cap.activations["embed"]
        doubled = cap(x2, scale=2.0)["embed"]
    torch.testing.assert_close(first, model.embed(x1).reshape(4, -1))
    torch.testing.assert_close(second, model.embed(x2).reshape(4, -1))
    torch.testing.assert_close(doubled, second)  # embed runs before the scale
    kw = capture_activations(model, x2, ["encoder.layers.0"], forward_kwargs={"scale": 0.0})
    plain = capture_activations(model, x2, ["encoder.layers.0"])
    assert not torch.allclose(kw["encoder.layers.0"], plain["encoder.layers.0"])


def test_detach_false_keeps_the_graph():
    model = ConvNet()
    x = torch.randn(2, 2, 4, 4, generator=_gen(9))
    with ActivationCapture(model, ["down"], pool=1, detach=False) as cap:
        acts = cap(x)
    acts["down"].sum().backward()
    assert model.stem.weight.grad is not None


# ---------------------------------------------------------------- hook lifetime
def test_hooks_are_removed_on_exit_and_when_the_forward_raises():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Linear(3, 3)

        def forward(self, x):
            self.first(x)
            raise RuntimeError("boom")

    model = Boom()
    with pytest.raises(RuntimeError, match="boom"):
        capture_activations(model, torch.zeros(4, 3), ["first"])
    assert _no_hooks(model)
    with pytest.raises(RuntimeError, match="boom"):
        with ActivationCapture(model, "first") as cap:
            assert not _no_hooks(model)
            cap(torch.zeros(4, 3))
    assert _no_hooks(model)

    class NoTensor(nn.Module):
        def forward(self, x):
            return "not a tensor"

    wrapper = nn.Sequential(NoTensor())
    with pytest.raises(AttnDiluteError, match="returned no tensor"):
        capture_activations(wrapper, torch.zeros(4, 3), ["0"])
    assert _no_hooks(wrapper)
    model = TinyTransformer()
    # MultiheadAttention uses out_proj's weights without calling it: that layer never runs
    with pytest.raises(AttnDiluteError, match="forward: encoder.layers.0.self_attn.out_proj"):
        capture_activations(model, torch.zeros(4, 6, 4), "encoder.layers.*")
    assert _no_hooks(model)


# ---------------------------------------------------------------- with MinibatchCKA
@pytest.mark.parametrize("kind", ["transformer", "conv", "tuple"])
def test_capture_and_minibatch_cka_of_a_model_with_itself(kind):
    model, layers, options, shape = {
        "transformer": (TinyTransformer(), "encoder.layers.?", {"tokens": 3}, (8, 6, 4)),
        "conv": (ConvNet(), ["stem", "act", "down"], {"pool": 2}, (8, 2, 8, 8)),
        "tuple": (TupleNet(), ["block", "attn"], {}, (8, 3, 5)),
    }[kind]
    model.eval()
    self_cka, pair_cka = MinibatchCKA(), MinibatchCKA()
    for k in range(3):
        x = torch.randn(*shape, generator=_gen(10 + k))
        acts_a = ad.capture_activations(model, x, layers, **options)
        acts_b = ad.capture_activations(model, x, layers, **options)  # a second forward
        self_cka.update(acts_a)
        pair_cka.update(acts_a, acts_b)
    names = tuple(select_modules(model, layers))
    assert self_cka.layers_a == self_cka.layers_b == names == pair_cka.layers_b
    for metric in (self_cka, pair_cka):
        got = metric.compute()
        assert got.shape == (len(names), len(names))
        torch.testing.assert_close(torch.diagonal(got), torch.ones(len(names), dtype=torch.float64),
                                   rtol=0, atol=1e-5)
        assert torch.all(got.abs() <= 1 + 1e-5)
        assert float(got[0, -1]) < 0.99  # distinct layers were captured, not one tensor twice
