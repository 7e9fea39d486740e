"""Checkpoints: safetensors round trips, foreign layouts written here, and refusals."""

from __future__ import annotations

import builtins
import json
import pickle
import struct

import numpy as np
import pytest
import torch

from attndilute.errors import AttnDiluteError
from attndilute.models import MODEL_PRESETS, build, load, load_weights, read_checkpoint, save

TINY = ["smit-tiny", "swin-tiny"]
X = (1, 1, 32, 32, 64)


class Ref:
    """A fresh tiny model, a fixed input and its outputs, computed once per module.

    Window 4 for both families keeps the CPU time low; the window does not change the file format.
    """

    def __init__(self, name):
        torch.manual_seed(0)
        self.model = build(name, window_size=4).eval()
        self.x = torch.randn(*X)
        with torch.no_grad():
            self.y = self.model(self.x)
            self.backbone = self._backbone(self.model)

    def _backbone(self, model):
        part = model.swinViT if model.family == "swin_unetr" else model.transformer
        return torch.cat([t.flatten() for t in part(self.x)])

    def same_outputs(self, other):
        with torch.no_grad():
            return torch.equal(other.eval()(self.x), self.y)

    def same_backbone(self, other):
        with torch.no_grad():
            return torch.equal(self._backbone(other.eval()), self.backbone)


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def refs():
    return {name: Ref(name) for name in TINY}


@pytest.fixture(scope="module")
def models(refs):
    return {name: ref.model for name, ref in refs.items()}


@pytest.mark.parametrize("name", TINY)
def test_safetensors_round_trip(refs, tmp_path, name):
    model = refs[name].model
    path = save(model, tmp_path / "m.safetensors", crop=(64, 64, 32), epoch=np.int64(7), dice=0.5)
    again = load(path)
    assert refs[name].same_outputs(again)
    meta = again.attndilute_meta
    assert meta["family"] == model.attndilute_meta["family"] and meta["crop"] == (64, 64, 32)
    assert meta["epoch"] == 7 and meta["dice"] == 0.5 and meta["spacing"] == (1.0, 1.0, 1.0)
    assert meta["kwargs"] == model.attndilute_meta["kwargs"] and "version" in meta
    from safetensors import safe_open  # the header is plain JSON any safetensors reader sees

    with safe_open(str(path), framework="pt") as fh:
        header = json.loads(fh.metadata()["attndilute"])
    assert header["family"] == meta["family"] and header["crop"] == [64, 64, 32]
    assert not list(tmp_path.glob(".*tmp*"))  # written through a temporary name


def test_load_overrides_constructor_arguments(models, tmp_path):
    path = save(models["smit-tiny"], tmp_path / "m.safetensors")
    model = load(path, mask_padding=True, use_flash_attention=True, crop=(128, 128, 64))
    assert model.mask_padding and model.attndilute_meta["kwargs"]["mask_padding"] is True
    assert model.transformer.layers[0].blocks[0].attn.use_flash_attention
    assert model.attndilute_meta["crop"] == (128, 128, 64)


# --- foreign layouts, written by the tests from a fresh model -------------------------------------


def _swin_nvidia_ssl(state):
    """NVIDIA's model_swinvit.pt: backbone only, no swinViT., mlp.fc1/fc2, DDP 'module.', SSL heads."""
    out = {}
    for k, v in state.items():
        if k.startswith("swinViT."):
            k = k[len("swinViT.") :].replace("mlp.linear1", "mlp.fc1").replace("mlp.linear2", "mlp.fc2")
            out["module." + k] = v
    out["module.rotation_head.weight"] = torch.zeros(4, 8)
    out["module.contrastive_head.weight"] = torch.zeros(512, 8)
    return {"epoch": 100, "best_acc": np.float64(0.8), "state_dict": out}


def _swin_dae_ssl(state):
    """Disruptive Autoencoder weights: encoder.layersN.0.0.*, undone by MONAI's filter_swinunetr."""
    out = {
        "encoder.mask_token": torch.zeros(1, 1, 12),
        "encoder.norm.weight": torch.ones(96),
        "out.conv.conv.weight": torch.zeros(1, 12, 1, 1, 1),
    }
    for k, v in state.items():
        if k.startswith("swinViT.patch_embed"):
            out["encoder." + k[len("swinViT.") :]] = v
        elif k.startswith("swinViT.layers"):
            rest = k[len("swinViT.") :]  # layers1.0.blocks...
            out["encoder." + rest[:10] + "0." + rest[10:]] = v
    return {"model": out}


def test_monai_full_state_dict_under_module(refs, tmp_path):
    model = refs["swin-tiny"].model
    raw = {"state_dict": {"module." + k: v for k, v in model.state_dict().items()}, "epoch": 3}
    torch.save(raw, tmp_path / "monai.pt")
    again = load(tmp_path / "monai.pt")
    assert refs["swin-tiny"].same_outputs(again)
    assert again.attndilute_meta["kwargs"]["feature_size"] == 12
    assert "missing_keys" not in again.attndilute_meta


@pytest.mark.parametrize("layout", [_swin_nvidia_ssl, _swin_dae_ssl])
def test_swin_self_supervised_backbones(refs, tmp_path, layout):
    model = refs["swin-tiny"].model
    torch.save(layout(model.state_dict()), tmp_path / "ssl.pth")
    again = load(tmp_path / "ssl.pth")
    assert refs["swin-tiny"].same_backbone(again)  # the whole backbone, bit for bit
    assert again.attndilute_meta["missing_keys"] > 0  # the decoder is not in an SSL file
    fresh = build("swin-tiny", window_size=4)
    n, missing, unexpected = load_weights(fresh, tmp_path / "ssl.pth")
    assert n == sum(k.startswith("swinViT.") for k in model.state_dict())
    assert all(not k.startswith("swinViT.") for k in missing) and not unexpected
    assert all(
        torch.equal(v, fresh.state_dict()[k]) for k, v in model.state_dict().items() if "swinViT." in k
    )


def _smit_student(state):
    """SMIT self-distillation checkpoint: {'student': {'module.backbone.transformer.*', heads}}."""
    student = {"module.backbone." + k: v for k, v in state.items() if k.startswith("transformer.")}
    student["module.backbone.transformer.mask_token"] = torch.zeros(1, 1, 12)
    student["module.backbone.norm.weight"] = torch.ones(96)
    student["module.backbone.head.mlp.0.weight"] = torch.zeros(16, 96)
    student["module.backbone.decoder1.weight"] = torch.zeros(8, 192, 1, 1, 1)
    return {"student": student, "teacher": dict(student), "epoch": 10}


def _smit_bare_backbone(state):
    """A bare SMIT backbone under 'state_dict' with 'backbone.' and no 'transformer.'."""
    return {
        "state_dict": {
            "backbone." + k[len("transformer.") :]: v
            for k, v in state.items()
            if k.startswith("transformer.")
        }
    }


@pytest.mark.parametrize("layout", [_smit_student, _smit_bare_backbone])
def test_smit_backbones(refs, tmp_path, layout):
    model = refs["smit-tiny"].model
    torch.save(layout(model.state_dict()), tmp_path / "smit.pth")
    again = load(tmp_path / "smit.pth")
    assert refs["smit-tiny"].same_backbone(again)
    n, missing, unexpected = load_weights(build("smit-tiny"), tmp_path / "smit.pth")
    assert n == sum(k.startswith("transformer.") for k in model.state_dict())
    assert all(not k.startswith("transformer.") for k in missing) and not unexpected


def test_smit_full_model_under_model_key(refs, tmp_path):
    model = refs["smit-tiny"].model
    torch.save({"model": {"module." + k: v for k, v in model.state_dict().items()}}, tmp_path / "full.pt")
    assert refs["smit-tiny"].same_outputs(load(tmp_path / "full.pt"))
    from safetensors.torch import save_file  # a bare safetensors state dict, no attndilute header

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "bare.safetensors"))
    again = load(tmp_path / "bare.safetensors")
    assert refs["smit-tiny"].same_outputs(again) and again.attndilute_meta["family"] == "smit"


def test_architecture_is_read_from_the_shapes(tmp_path):
    """The public SMIT config (depths 2-2-4-2, 4 heads everywhere) and a v2 Swin, without kwargs.

    Same class, same constructor arguments read back, every tensor equal: the same function.
    """
    smit = build("smit-tiny", depths=(2, 2, 4, 2), num_heads=(4, 4, 4, 4), embed_dim=16, out_channels=3)
    torch.save({"model": smit.state_dict()}, tmp_path / "s.pt")
    again = load(tmp_path / "s.pt")
    assert again.attndilute_meta["kwargs"]["depths"] == (2, 2, 4, 2)
    assert again.attndilute_meta["kwargs"]["num_heads"] == (4, 4, 4, 4)
    assert type(again) is type(smit) and _same_state(smit, again)
    swin = build("swin-tiny", use_v2=True, window_size=4, feature_size=24, qkv_bias=False)
    torch.save(swin.state_dict(), tmp_path / "w.pt")
    again = load(tmp_path / "w.pt")
    kw = again.attndilute_meta["kwargs"]
    assert kw["use_v2"] and kw["window_size"] == 4 and kw["feature_size"] == 24 and kw["qkv_bias"] is False
    assert type(again) is type(swin) and _same_state(swin, again)


# --- refusals ----------------------------------------------------------------------------------


class _Payload:
    """Unpickling this object opens (creates) a marker file: a stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def test_pickle_that_runs_code_is_refused_and_never_executed(models, tmp_path):
    marker = tmp_path / "marker"
    bad = tmp_path / "evil.pt"
    torch.save({"state_dict": models["smit-tiny"].state_dict(), "x": _Payload(marker)}, bad)
    with pytest.raises(AttnDiluteError, match="refused") as err:
        load(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(AttnDiluteError, match="refused"):
        load_weights(build("smit-tiny"), bad)
    assert not marker.exists()
    legacy = tmp_path / "legacy.pkl"  # a bare pickle stream, not a torch zip
    legacy.write_bytes(pickle.dumps({"state_dict": {}, "x": _Payload(marker)}, protocol=2))
    with pytest.raises(AttnDiluteError):
        load(legacy)
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Payload(marker))).close()  # control: an unsafe load runs the payload
    assert marker.exists()


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_truncated_file_is_a_one_line_error(models, tmp_path, fmt):
    model = models["smit-tiny"]
    path = tmp_path / f"m.{fmt}"
    if fmt == "safetensors":
        save(model, path)
    else:
        torch.save(model.state_dict(), path)
    data = path.read_bytes()
    for cut in (len(data) // 2, 20):
        path.write_bytes(data[:cut])
        with pytest.raises(AttnDiluteError, match="truncated") as err:
            load(path)
        assert "\n" not in str(err.value)


def test_wrong_architecture_names_counts_and_family(models, tmp_path):
    torch.save({"state_dict": models["smit-tiny"].state_dict()}, tmp_path / "smit.pt")
    with pytest.raises(AttnDiluteError) as err:
        load(tmp_path / "smit.pt", family="swin_unetr")
    msg = str(err.value)
    assert "\n" not in msg and "looks like smit" in msg
    assert "keys missing" in msg and "unexpected" in msg
    path = save(models["smit-tiny"], tmp_path / "m.safetensors")
    with pytest.raises(AttnDiluteError, match=r"\d+ with other shapes; it looks like smit"):
        load(path, embed_dim=24)
    with pytest.raises(AttnDiluteError, match="looks like smit, the model is swin_unetr"):
        load_weights(build("swin-tiny"), path)
    with pytest.raises(AttnDiluteError, match="not swin_unetr"):
        load(path, family="swin_unetr")


def test_unreadable_inputs(tmp_path):
    with pytest.raises(AttnDiluteError, match="no such checkpoint"):
        load(tmp_path / "absent.safetensors")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(AttnDiluteError, match="empty"):
        load(tmp_path / "empty.pt")
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(AttnDiluteError, match="not a checkpoint"):
        read_checkpoint(tmp_path / "notes.pt")
    torch.save({"state_dict": {"conv.weight": torch.zeros(3)}}, tmp_path / "other.pt")
    with pytest.raises(AttnDiluteError, match="cannot tell which model"):
        load(tmp_path / "other.pt")


# --- format detection by structure, not by the first byte ------------------------------------------


def _header_length(path):
    return struct.unpack("<Q", path.read_bytes()[:8])[0]


def test_every_reachable_header_length_of_save_reads_as_safetensors(models, tmp_path):
    """safetensors pads its header to 8 bytes, so ``save`` reaches the 32 low bytes 0, 8, ..., 248.

    One in 32 of them is 0x80, the pickle PROTO opcode; each file must still give back its own
    crop and spacing, and the 0x80 one (plus two others) must load completely.
    """
    model = models["smit-tiny"]
    seen = {}
    for i, pad in enumerate(range(0, 256, 8)):
        crop, spacing = (64, 32, 32 * (1 + i % 3)), (0.5 + i % 4, 0.5, 2.0)  # fixed widths
        path = save(model, tmp_path / f"m{i}.safetensors", crop=crop, spacing=spacing, pad="x" * pad)
        _, meta = read_checkpoint(path)
        assert (meta["crop"], meta["spacing"]) == (list(crop), list(spacing))
        seen[_header_length(path) % 256] = (path, crop, spacing)
    assert sorted(seen) == list(range(0, 256, 8))
    for low in (0x80, 0, 8):
        path, crop, spacing = seen[low]
        again = load(path).attndilute_meta
        assert (again["crop"], again["spacing"]) == (crop, spacing)


def _raw_safetensors(path, meta_text, low_byte):
    """A hand-made safetensors file (one 4-float tensor) whose header length ends in ``low_byte``."""

    def header(pad):
        meta = {"attndilute": meta_text, "pad": "x" * pad}
        tensor = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
        return json.dumps({"__metadata__": meta, "w": tensor}).encode()

    text = header((low_byte - len(header(0))) % 256)
    path.write_bytes(struct.pack("<Q", len(text)) + text + np.arange(4, dtype="<f4").tobytes())
    return path


def test_every_header_length_low_byte_reads_as_safetensors(tmp_path):
    """Unpadded headers (other writers) take all 256 low bytes, 0x80 and 0x80 + protocol included."""
    for low in range(256):
        crop, spacing = [32, 64, 32 * (1 + low % 3)], [1.0, 1.0 + low / 256, 3.0]
        meta = json.dumps({"family": "smit", "kwargs": {}, "crop": crop, "spacing": spacing})
        path = _raw_safetensors(tmp_path / f"r{low}.safetensors", meta, low)
        assert _header_length(path) % 256 == low
        state, got = read_checkpoint(path)
        assert torch.equal(state["w"], torch.arange(4.0)) and (got["crop"], got["spacing"]) == (crop, spacing)


def test_truncated_header_with_pickle_like_first_bytes(tmp_path):
    """Header length 0x0280: the file opens 0x80 0x02 like a pickle; cut short, it is 'truncated'."""
    meta = json.dumps({"family": "smit", "kwargs": {}})
    text = json.dumps({"__metadata__": {"attndilute": meta}, "w": {"dtype": "F32", "shape": [0]}})
    path = tmp_path / "m.safetensors"
    path.write_bytes((struct.pack("<Q", 0x0280) + text.encode().ljust(0x0280))[:200])
    assert path.read_bytes()[:2] == b"\x80\x02"
    with pytest.raises(AttnDiluteError, match="safetensors header is cut short") as err:
        read_checkpoint(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_pickles_named_safetensors_are_read_as_pickles(refs, tmp_path):
    marker = tmp_path / "marker"
    legacy = tmp_path / "legacy.safetensors"  # torch's pre-zip format: a pickle stream, 0x80 0x02
    torch.save(refs["smit-tiny"].model.state_dict(), legacy, _use_new_zipfile_serialization=False)
    assert legacy.read_bytes()[:2] == b"\x80\x02"
    assert refs["smit-tiny"].same_outputs(load(legacy))
    for protocol in (2, 3, 4, 5):
        evil = tmp_path / f"evil{protocol}.safetensors"
        evil.write_bytes(pickle.dumps({"state_dict": {}, "x": _Payload(marker)}, protocol=protocol))
        with pytest.raises(AttnDiluteError, match="refused") as err:
            load(evil)
        assert str(evil) in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_safetensors_reader_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.safetensors"  # a valid JSON header whose tensor lies past the end
    text = json.dumps({"w": {"dtype": "F32", "shape": [400], "data_offsets": [0, 1600]}}).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"\0" * 16)
    with pytest.raises(AttnDiluteError, match="cannot read safetensors") as err:
        load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


# --- metadata schema ----------------------------------------------------------------------------------


def _with_meta(model, path, meta):
    """The model's tensors saved with ``meta`` (a JSON-able value or raw text) as attndilute metadata."""
    from safetensors.torch import save_file

    text = meta if isinstance(meta, str) else json.dumps(meta)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"attndilute": text})
    return path


_OK = {"family": "smit", "kwargs": {"embed_dim": 12}}


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ("[1, 2]", "is not a JSON object"),
        ('"smit"', "is not a JSON object"),
        ("{nope", "is not valid JSON"),
        ('{"family": "smit", "kwargs": {}, "crop": [64, 64, NaN]}', "is not valid JSON"),
        ({"kwargs": {}}, "has no 'family'"),
        ({"family": "vit", "kwargs": {}}, "unknown model family 'vit'.*known: smit, swin_unetr"),
        ({"family": ["smit"], "kwargs": {}}, "not a name"),
        ({"family": "smit"}, "kwargs must be an object"),
        ({"family": "smit", "kwargs": [1]}, "kwargs must be an object"),
        ({**_OK, "crop": [64, 64]}, "crop must be 3 positive integers"),
        ({**_OK, "crop": [64, -32, 32]}, "crop must be 3 positive integers"),
        ({**_OK, "crop": [64, 64, 32.5]}, "crop must be 3 positive integers"),
        ({**_OK, "crop": [True, 64, 64]}, "crop must be 3 positive integers"),
        ({**_OK, "crop": "64x64x32"}, "crop must be 3 positive integers"),
        ({**_OK, "spacing": [1.0, 1.0, 0.0]}, "spacing must be 3 finite positive numbers"),
        ('{"family": "smit", "kwargs": {}, "spacing": [1, 1, 1e400]}', "spacing must be 3 finite positive"),
        ({**_OK, "spacing": [1.0, "1", 1.0]}, "spacing must be 3 finite positive numbers"),
        ({**_OK, "spacing": 1.0}, "spacing must be 3 finite positive numbers"),
    ],
)
def test_metadata_schema_violations(models, tmp_path, meta, match):
    path = _with_meta(models["smit-tiny"], tmp_path / "m.safetensors", meta)
    with pytest.raises(AttnDiluteError, match=match) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_metadata_schema_applies_to_pytorch_files(models, tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"state_dict": models["smit-tiny"].state_dict(), "attndilute_meta": ["smit"]}, path)
    with pytest.raises(AttnDiluteError, match="not a JSON object") as err:
        read_checkpoint(path)
    assert str(path) in str(err.value)


def test_valid_metadata_with_optional_entries_left_out_loads(refs, tmp_path):
    kwargs = refs["smit-tiny"].model.attndilute_meta["kwargs"]
    path = _with_meta(
        refs["smit-tiny"].model, tmp_path / "m.safetensors", {"family": "smit", "kwargs": kwargs}
    )
    again = load(path)
    assert refs["smit-tiny"].same_outputs(again)
    assert again.attndilute_meta["crop"] == MODEL_PRESETS["smit"].crop  # the family default


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"embed_dim": "wide"}, r"cannot build the model the checkpoint describes \(not all arguments"),
        ({"dropout_path_rate": 5.0}, "cannot build the model the checkpoint describes: .*Drop path prob"),
        ({"nonsense": 1}, "cannot build the model the checkpoint describes: .*does not take nonsense"),
    ],
)
def test_constructor_errors_name_the_file(refs, tmp_path, kwargs, match):
    model = refs["smit-tiny"].model
    meta = {"family": "smit", "kwargs": {**model.attndilute_meta["kwargs"], **kwargs}}
    path = _with_meta(model, tmp_path / "m.safetensors", meta)
    with pytest.raises(AttnDiluteError, match=match) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"embed_dim": 10**15}, r"says embed_dim=1000000000000000 but its tensors say 12"),
        (
            {"depths": [2, 2, 2, 10**9]},
            r"says depths=\(2, 2, 2, 1000000000\) but its tensors say \(2, 2, 2, 2\)",
        ),
        ({"num_heads": [2, 2, 4, 10**12]}, "says num_heads=.* but its tensors say"),
        ({"window_size": [10**6] * 3}, "says window_size=.* but its tensors say 4"),
        ({"mlp_ratio": 1e12}, "says mlp_ratio=1000000000000.0 but its tensors say 4.0"),
        ({"out_channels": 10**15}, "says out_channels=.* but its tensors say 2"),
    ],
)
def test_giant_metadata_sizes_are_refused_before_allocation(refs, tmp_path, kwargs, match):
    """Sizes the tensors contradict would mean allocating ~10^16 bytes (or 10^9 blocks)."""
    model = refs["smit-tiny"].model
    meta = {"family": "smit", "kwargs": {**model.attndilute_meta["kwargs"], **kwargs}}
    path = _with_meta(model, tmp_path / "m.safetensors", meta)
    with pytest.raises(AttnDiluteError, match=match) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_model_too_large_to_allocate_is_a_one_line_error(models, tmp_path):
    """An override the tensors cannot contradict (a backbone-only load) still fails in one line."""
    path = save(models["swin-tiny"], tmp_path / "m.safetensors")
    with pytest.raises(AttnDiluteError, match="cannot build the model the checkpoint describes") as err:
        load(path, strict=False, out_channels=10**15)  # a 4.8e16-byte output convolution
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
