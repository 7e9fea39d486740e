"""attndilute.store: layer selection, pooled capture, the zarr store (cache, resume, rebuild), CKA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from attndilute.cka import MinibatchCKA
from attndilute.errors import AttnDiluteError
from attndilute.store import (
    ActivationStore,
    LayerCapture,
    StoreKey,
    capture_into,
    cka_from_stores,
    data_fingerprint,
    infer_layout,
    minibatches,
    pool_tokens,
    select_layers,
    weights_hash,
)


# ---------------------------------------------------------------- a toy with the MONAI block interface
class ToyBlock(nn.Module):
    """Channels-last in and out, like a MONAI SwinTransformerBlock."""

    def __init__(self, c: int):
        super().__init__()
        self.window_size, self.shift_size = (2, 2, 2), (0, 0, 0)
        self.attn = nn.Module()
        self.attn.softmax = nn.Softmax(dim=-1)
        self.mlp = nn.Linear(c, c)

    def forward(self, x):  # (B, D, H, W, C)
        return x + torch.tanh(self.mlp(x))


class ToyStage(nn.Module):
    """Blocks on channels-last tokens, then a strided conv: output channels-first (like MONAI)."""

    def __init__(self, c: int):
        super().__init__()
        self.blocks = nn.ModuleList([ToyBlock(c), ToyBlock(c)])
        self.downsample = nn.Conv3d(c, 2 * c, 2, stride=2)

    def forward(self, x):  # (B, C, D, H, W)
        x = x.permute(0, 2, 3, 4, 1)
        for block in self.blocks:
            x = block(x)
        return self.downsample(x.permute(0, 4, 1, 2, 3))


class Toy(nn.Module):
    def __init__(self, fail_at: int | None = None):
        super().__init__()
        self.stem = nn.Conv3d(1, 3, 2, stride=2)
        self.stages = nn.ModuleList([ToyStage(3), ToyStage(6)])
        self.head = nn.Conv3d(12, 2, 1)
        self.calls, self.head_calls, self.fail_at = 0, 0, fail_at

    def forward(self, x):  # (B, 1, X, Y, Z)
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("killed mid-capture")
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        self.head_calls += 1
        return self.head(x)


def _toy(seed: int = 0, **kwargs) -> Toy:
    torch.manual_seed(seed)
    return Toy(**kwargs).eval()


CROP = (16, 16, 8)


def _scans(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 1, *CROP, generator=g) for _ in range(n)]


def _key(model, specs, n, **over) -> StoreKey:
    fields = {"model_hash": weights_hash(model), "data_fingerprint": "d" * 64,
              "scans": tuple(f"s{i}" for i in range(n)), "layers": tuple(s.name for s in specs),
              "pool": (2, 2, 2), "crop": CROP, "spacing": (1.0, 1.0, 1.0)}
    return StoreKey(**{**fields, **over})


def _fill(path, model, scans, *, pool=(2, 2, 2), **over) -> ActivationStore:
    specs = select_layers(model)
    store = ActivationStore(path, _key(model, specs, len(scans), pool=pool, **over), specs)
    with LayerCapture(model, specs, crop=CROP, pool=pool) as cap:
        capture_into([(cap, store)], lambda i: scans[i])
    return store


# ---------------------------------------------------------------- layers
def test_default_layers_are_blocks_then_their_stage_in_forward_order():
    specs = select_layers(_toy())
    assert [s.label for s in specs] == ["S0.B0", "S0.B1", "S0", "S1.B0", "S1.B1", "S1"]
    assert specs[0].name == "stages.0.blocks.0" and specs[2].name == "stages.0"
    assert [s.kind for s in specs[:3]] == ["block", "block", "stage"]


def test_glob_selection_skips_containers_and_reports_no_match():
    names = [s.name for s in select_layers(_toy(), "stages.1*")]
    assert "stages.1" in names and "stages.1.blocks" not in names  # a ModuleList has no forward
    assert names.index("stages.1.blocks.0.mlp") < names.index("stages.1.blocks.0") < names.index("stages.1")
    assert [s.name for s in select_layers(_toy(), "stem, head")] == ["stem", "head"]
    with pytest.raises(AttnDiluteError, match="matches no module"):
        select_layers(_toy(), "nothing*")
    with pytest.raises(AttnDiluteError, match="no transformer blocks"):
        select_layers(nn.Sequential(nn.Linear(2, 2)))


# ---------------------------------------------------------------- pooling and layout
def test_infer_layout_uses_the_crop_grid_and_falls_back_to_the_hint():
    crop = (64, 64, 32)
    assert infer_layout((1, 24, 16, 16, 8), crop, "channels_last") == "channels_first"
    assert infer_layout((1, 16, 16, 8, 24), crop, "channels_first") == "channels_last"
    assert infer_layout((1, 8, 8, 8, 8), (64, 64, 64), "channels_last") == "channels_last"  # ambiguous
    assert infer_layout((1, 8, 8, 8, 8), None, "channels_first") == "channels_first"


def test_pool_tokens_matches_block_means_and_never_upsamples():
    t = torch.randn(2, 4, 6, 3, 5)  # channels-last (B, D, H, W, C)
    pooled = pool_tokens(t, layout="channels_last", pool=(2, 3, 8))
    assert pooled.tokens == (2, 3, 3) and pooled.channels == 5  # W = 3 < 8 is kept, not upsampled
    expected = np.zeros((2, 5, 2, 3, 3))
    tn = t.numpy()
    for b in range(2):
        for c in range(5):
            for i in range(2):
                for j in range(3):
                    for k in range(3):
                        expected[b, c, i, j, k] = tn[b, 2 * i:2 * i + 2, 2 * j:2 * j + 2, k, c].mean()
    np.testing.assert_allclose(pooled.features.numpy(), expected.reshape(2, -1), rtol=1e-6, atol=1e-6)
    flat = pool_tokens(torch.ones(2, 5, 7), layout="flat", pool=(8, 8, 8))
    assert flat.features.shape == (2, 35) and flat.layout == "flat"


def test_capture_equals_manual_pooling_of_raw_hook_outputs_and_skips_the_head():
    model, x = _toy(), _scans(1)[0]
    specs = select_layers(model)
    raw = {}
    handles = [dict(model.named_modules())[s.name].register_forward_hook(
        lambda m, i, o, n=s.name: raw.__setitem__(n, o.detach())) for s in specs]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    model.head_calls = 0
    with LayerCapture(model, specs, crop=CROP, pool=(2, 2, 2)) as cap:
        pooled = cap.run(x)
    assert model.head_calls == 0  # the forward stopped after the last hooked layer
    for s in specs:
        t = raw[s.name]
        cf = t.permute(0, 4, 1, 2, 3) if s.kind == "block" else t  # blocks are channels-last
        size = tuple(min(d, 2) for d in cf.shape[2:])
        expected = nn.functional.adaptive_avg_pool3d(cf, size).reshape(1, -1)
        torch.testing.assert_close(pooled[s.name].features, expected)
        assert pooled[s.name].layout == ("channels_last" if s.kind == "block" else "channels_first")


def test_capture_reports_layers_that_never_ran():
    model = _toy()
    spec = select_layers(model, "stem")[0]
    ghost = type(spec)("stages.1.blocks", "module", 1, -1)
    with LayerCapture(model, [spec, ghost], crop=CROP) as cap:
        with pytest.raises(AttnDiluteError, match="never ran"):
            cap.run(_scans(1)[0])


# ---------------------------------------------------------------- the store
def test_store_round_trip_layout_and_attributes(tmp_path):
    model, scans = _toy(), _scans(5)
    store = _fill(tmp_path / "a.zarr", model, scans)
    assert store.complete and store.status == "new"
    import zarr

    group = zarr.open_group(tmp_path / "a.zarr", mode="r", zarr_format=3)
    assert group.attrs["key"]["layers"] == [s.name for s in select_layers(model)]
    assert group.attrs["key"]["pool"] == [2, 2, 2] and group.attrs["n_complete"] == 5
    specs = select_layers(model)
    with LayerCapture(model, specs, crop=CROP, pool=(2, 2, 2)) as cap:
        direct = [cap.run(x) for x in scans]
    for s in specs:
        array = group[s.name]
        assert array.shape == (5, direct[0][s.name].features.shape[1]) and array.chunks == (1, array.shape[1])
        assert array.dtype == np.float32 and array.attrs["kind"] == s.kind
        expected = np.concatenate([d[s.name].features.numpy() for d in direct])
        np.testing.assert_array_equal(array[:], expected)
        np.testing.assert_array_equal(store.read(s.name, [4, 1]), expected[[4, 1]])


def test_store_is_reused_without_running_the_model(tmp_path):
    scans = _scans(4)
    _fill(tmp_path / "a.zarr", _toy(), scans)
    model = _toy()
    again = _fill(tmp_path / "a.zarr", model, scans)
    assert again.status == "complete" and model.calls == 0


@pytest.mark.parametrize("change", ["pool", "weights", "data"])
def test_store_with_other_attributes_is_rebuilt_with_a_message(tmp_path, change):
    scans = _scans(4)
    first = _fill(tmp_path / "a.zarr", _toy(), scans)
    name = first.key.layers[-1]
    before = first.read(name)
    model = _toy(seed=1 if change == "weights" else 0)
    over = {"data_fingerprint": "e" * 64} if change == "data" else {}
    pool = (1, 1, 1) if change == "pool" else (2, 2, 2)
    again = _fill(tmp_path / "a.zarr", model, scans, pool=pool, **over)
    field = {"pool": "pool", "weights": "model_hash", "data": "data_fingerprint"}[change]
    assert again.status == "rebuilt" and field in again.message
    assert model.calls == 4 and again.complete
    assert np.array_equal(again.read(name), before) == (change == "data")


def test_killed_capture_resumes_to_the_same_store(tmp_path):
    scans = _scans(6)
    reference = _fill(tmp_path / "ref.zarr", _toy(), scans)
    with pytest.raises(RuntimeError, match="killed"):
        _fill(tmp_path / "a.zarr", _toy(fail_at=4), scans)  # dies on the 4th scan
    partial = ActivationStore(tmp_path / "a.zarr", reference.key, select_layers(_toy()))
    assert partial.status == "resumed" and partial.n_complete == 3
    partial.group[reference.key.layers[0]][3] = 7.0  # a half-written row of the scan that was cut
    with pytest.raises(AttnDiluteError, match="incomplete"):
        partial.read(reference.key.layers[0])
    model = _toy()
    resumed = _fill(tmp_path / "a.zarr", model, scans)
    assert model.calls == 3  # scans 3, 4, 5 only
    import zarr

    ref_group = zarr.open_group(tmp_path / "ref.zarr", mode="r", zarr_format=3)
    got_group = zarr.open_group(tmp_path / "a.zarr", mode="r", zarr_format=3)
    assert dict(ref_group.attrs) == dict(got_group.attrs)
    for name in reference.key.layers:
        np.testing.assert_array_equal(got_group[name][:], ref_group[name][:])
        assert dict(got_group[name].attrs) == dict(ref_group[name].attrs)
    assert resumed.complete


def test_float16_store_and_write_order(tmp_path):
    model, scans = _toy(), _scans(4)
    store = _fill(tmp_path / "h.zarr", model, scans, dtype="float16")
    ref = _fill(tmp_path / "f.zarr", model, scans)
    name = ref.key.layers[0]
    import zarr

    assert zarr.open_array(tmp_path / "h.zarr" / name, mode="r").dtype == np.float16
    np.testing.assert_allclose(store.read(name), ref.read(name), rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="in order"):
        store.write_scan(1, {})
    with pytest.raises(AttnDiluteError, match="dtype"):
        _fill(tmp_path / "x.zarr", model, scans, dtype="int8")


def test_data_fingerprint_follows_file_contents(tmp_path):
    from attndilute.data import Case

    files = []
    for i in range(2):
        files.append(tmp_path / f"c{i}.nii.gz")
        files[-1].write_bytes(bytes([i]) * 100)
    cases = [Case(f"c{i}", f, None) for i, f in enumerate(files)]
    before = data_fingerprint(cases)
    assert before == data_fingerprint(cases)
    files[1].write_bytes(b"\x01" * 99 + b"\x02")
    assert data_fingerprint(cases) != before


# ---------------------------------------------------------------- CKA over stores
@settings(max_examples=40, deadline=None)
@given(st.integers(4, 80), st.integers(4, 32), st.integers(1, 3), st.integers(0, 99))
def test_minibatches_partition_each_epoch_into_batches_of_more_than_3(n, batch, epochs, seed):
    batches = minibatches(n, batch, epochs, seed)
    per_epoch = len(batches) // epochs
    sizes = [len(b) for b in batches]
    assert min(sizes) > 3 and max(sizes) - min(sizes) <= 1
    assert max(sizes) <= batch or per_epoch == 1 or n // (per_epoch + 1) <= 3
    for e in range(epochs):
        seen = np.concatenate(batches[e * per_epoch:(e + 1) * per_epoch])
        assert sorted(seen.tolist()) == list(range(n))
    assert all(np.all(np.diff(b) > 0) for b in batches)


def test_minibatches_refuse_n_at_most_3():
    with pytest.raises(AttnDiluteError, match="more than 3"):
        minibatches(3, 16, 1, 0)
    with pytest.raises(AttnDiluteError, match="more than 3"):
        minibatches(10, 3, 1, 0)


def test_cka_from_stores_equals_minibatch_cka_on_arrays_read_back(tmp_path):
    import zarr

    scans = _scans(9)
    store_a = _fill(tmp_path / "a.zarr", _toy(0), scans)
    store_b = _fill(tmp_path / "b.zarr", _toy(1), scans)
    got = cka_from_stores(store_a, store_b, batch_size=4, epochs=2, seed=5)
    arrays = {}
    for side, store in (("a", store_a), ("b", store_b)):
        group = zarr.open_group(tmp_path / f"{side}.zarr", mode="r", zarr_format=3)
        arrays[side] = [np.asarray(group[name][:]) for name in store.key.layers]
    metric = MinibatchCKA()
    for rows in minibatches(9, 4, 2, 5):
        metric.update([torch.from_numpy(a[rows]) for a in arrays["a"]],
                      [torch.from_numpy(b[rows]) for b in arrays["b"]])
    torch.testing.assert_close(got, metric.compute(), rtol=0, atol=0)
    self_cka = cka_from_stores(store_a, None, batch_size=4, epochs=1, seed=0)
    assert torch.equal(torch.diagonal(self_cka), torch.ones(len(store_a.key.layers), dtype=torch.float64))
