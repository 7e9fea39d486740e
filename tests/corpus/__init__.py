"""The bad-input corpus: one generator per bad input, every one from the tester's report and more.

A generator builds its input under ``root`` (NIfTI, CSV and checkpoint files written by code, no
binary blobs) and returns a :class:`Bad`: the command line to run and a text the one-line error
must contain. ``tests/integration/test_bad_input_corpus.py`` runs each case and checks exit code 2,
one line on stderr naming the file, no traceback, no file created, and every input file unchanged (hashes).
"""

from __future__ import annotations

import json
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

CASES: dict[str, Callable[[Path, dict], Bad]] = {}


@dataclass
class Bad:
    """A command line (paths as given) and a text its error must contain."""

    argv: list
    says: str
    names: str | None = None  # the path the error must name (default: the first path in says' case)
    extra: dict = field(default_factory=dict)


def case(name: str):
    def register(fn):
        CASES[name] = fn
        return fn

    return register


# --- builders ------------------------------------------------------------------------------------


def nii(path: Path, data, affine=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), str(path))
    return path


def volume(seed: int = 0, shape=(8, 8, 6)) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 1000, shape).astype(np.int16)


def label(shape=(8, 8, 6)) -> np.ndarray:
    lab = np.zeros(shape, np.uint8)
    lab[2:5, 2:5, 2:4] = 1
    return lab


def flat_cohort(root: Path, n: int = 3, **overrides) -> Path:
    """``root/NAME_image.nii.gz`` + ``NAME_label.nii.gz``; ``overrides`` replace case c0's arrays."""
    for i in range(n):
        nii(root / f"c{i}_image.nii.gz", overrides.get("image", volume(i)) if i == 0 else volume(i))
        nii(root / f"c{i}_label.nii.gz", overrides.get("label", label()) if i == 0 else label())
    return root


def nnunet_cohort(root: Path, n: int = 3) -> Path:
    for i in range(n):
        nii(root / "imagesTr" / f"c{i}_0000.nii.gz", volume(i))
        nii(root / "labelsTr" / f"c{i}.nii.gz", label())
    (root / "dataset.json").write_text(json.dumps({"name": "tiny", "file_ending": ".nii.gz"}))
    return root


def eval_csv(path: Path, **column) -> Path:
    """A valid ``attndilute evaluate`` table of 4 cases; ``column={name: values}`` replaces one."""
    import pandas as pd

    table = pd.DataFrame(
        {
            "case": [f"c{i}" for i in range(4)],
            "dice": [0.8, 0.7, 0.0, 0.9],
            "sdsc": [0.7, 0.6, 0.0, 0.8],
            "vr": [1.0, 1.2, 0.0, 0.9],
            "detected": [True, True, False, True],
        }
    )
    for name, values in column.items():
        table[name] = values
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


def safetensors_with_meta(path: Path, meta_text: str) -> Path:
    """A safetensors file holding one tensor and ``meta_text`` as the attndilute metadata."""
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(path), metadata={"attndilute": meta_text, "format": "pt"})
    return path


def checkpoint(path: Path, shared: dict) -> Path:
    path.write_bytes(shared["ckpt_bytes"])
    return path


# --- output safety ---------------------------------------------------------------------------------


@case("subtypes-out-is-the-cohort")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    (data / "notes.txt").write_text("my notes")
    return Bad(["subtypes", "--data", data, "--out", data], "inside the input cohort", names=str(data))


@case("subtypes-out-holds-user-files")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    mine = root / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    return Bad(["subtypes", "--data", data, "--out", mine], "files it did not write", names=str(mine))


@case("predict-out-is-labelsTr")
def _(root, shared):
    data = nnunet_cohort(root / "cohort")
    ckpt = checkpoint(root / "m.safetensors", shared)
    out = data / "labelsTr"
    return Bad(
        ["predict", "--model", ckpt, "--data", data, "--out", out, "--split", "all"],
        "inside the input cohort",
        names=str(out),
    )


@case("padstats-out-in-imagesTr")
def _(root, shared):
    data = nnunet_cohort(root / "cohort")
    out = data / "imagesTr" / "p.csv"
    return Bad(
        ["padstats", "--data", data, "--crop", "8", "8", "8", "--out", out],
        "inside the input cohort",
        names=str(out),
    )


@case("adi-out-is-a-file")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    out = root / "results.txt"
    out.write_text("not a folder")
    return Bad(
        ["adi", "--model", "random:smit-tiny", "--data", data, "--out", out],
        "a file of that name exists",
        names=str(out),
    )


@case("adi-out-holds-user-files")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    out = root / "results"
    out.mkdir()
    (out / "keep.csv").write_text("a,b\n1,2\n")
    return Bad(
        ["adi", "--model", "random:smit-tiny", "--data", data, "--out", out],
        "files it did not write",
        names=str(out),
    )


@case("adi-out-holds-another-command")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    out = root / "results"
    out.mkdir()
    (out / ".attndilute-run.json").write_text(json.dumps({"command": "cka", "status": "complete"}))
    (out / "cka.png").write_bytes(b"png")
    return Bad(
        ["adi", "--model", "random:smit-tiny", "--data", data, "--out", out],
        "holds an `attndilute cka` run",
        names=str(out),
    )


@case("out-under-a-file")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    blocker = root / "blocker"
    blocker.write_text("a file")
    return Bad(
        ["padstats", "--data", data, "--crop", "8", "8", "8", "--out", blocker / "p.csv"],
        "cannot write the output",
        names=str(blocker),
    )


@case("adi-out-read-only")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    out = root / "locked"
    out.mkdir()
    out.chmod(0o555)  # read-only: refused even for root, who could write into it
    return Bad(
        ["adi", "--model", "random:smit-tiny", "--data", data, "--out", out / "adi"],
        "read-only",
        names=str(out),
    )


@case("padstats-out-in-read-only-folder")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    out = root / "locked"
    out.mkdir()
    out.chmod(0o555)
    return Bad(
        ["padstats", "--data", data, "--crop", "8", "8", "8", "--out", out / "p.csv"],
        "read-only",
        names=str(out),
    )


@case("cka-out-inside-cohort")
def _(root, shared):
    data = flat_cohort(root / "cohort", n=4)
    out = data / "cka"
    return Bad(
        ["cka", "random:smit-tiny", "init:A", "--data", data, "--out", out],
        "inside the input cohort",
        names=str(out),
    )


@case("train-out-holds-user-files")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    out = root / "run"
    out.mkdir()
    (out / "draft.md").write_text("draft")
    return Bad(
        ["train", "--data", data, "--out", out, "--epochs", "1"], "files it did not write", names=str(out)
    )


@case("evaluate-out-is-an-input")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    pred = root / "pred"
    for i in range(3):
        nii(pred / f"c{i}.nii.gz", label())
    pad = eval_csv(root / "padstats.csv")
    return Bad(
        ["evaluate", "--pred", pred, "--data", data, "--padstats", pad, "--out", pad],
        "one of this command's inputs",
        names=str(pad),
    )


@case("compare-out-is-an-input")
def _(root, shared):
    a, b = eval_csv(root / "a.csv"), eval_csv(root / "b.csv")
    return Bad(["compare", a, b, "--out", a], "one of this command's inputs", names=str(a))


@case("compare-out-exists")
def _(root, shared):
    a, b = eval_csv(root / "a.csv"), eval_csv(root / "b.csv")
    out = root / "table.csv"
    out.write_text("my own table\n")
    return Bad(["compare", a, b, "--out", out], "no earlier `attndilute compare` wrote it", names=str(out))


@case("report-out-exists")
def _(root, shared):
    run = root / "run"
    run.mkdir()
    out = root / "page.html"
    out.write_text("<html>mine</html>")
    return Bad(
        ["report", "--run", run, "--out", out], "no earlier `attndilute report` wrote it", names=str(out)
    )


@case("phantom-out-is-a-file")
def _(root, shared):
    out = root / "cohort"
    out.write_text("a file")
    return Bad(["phantom", "--out", out, "--n", "2"], "a file of that name exists", names=str(out))


@case("phantom-overwrite-over-a-real-cohort")
def _(root, shared):
    data = nnunet_cohort(root / "cohort")
    return Bad(["phantom", "--out", data, "--n", "2", "--overwrite"], "which a phantom writes but did not",
               names=str(data))


@case("demo-out-holds-user-data")
def _(root, shared):
    out = root / "D"
    (out / "data").mkdir(parents=True)
    (out / "data" / "scan.nii.gz").write_bytes(b"x")
    return Bad(
        ["demo", "--fast", "--out", out, "--overwrite"],
        "which the demo writes but did not write",
        names=str(out),
    )


# --- data -------------------------------------------------------------------------------------------


@case("zero-spacing")
def _(root, shared):
    data = root / "cohort"
    flat_cohort(data)
    img = nib.Nifti1Image(volume(), None)
    img.header["pixdim"][1:4] = [0.0, 1.0, 1.0]
    path = data / "c0_image.nii.gz"
    nib.save(img, str(path))
    return Bad(
        ["padstats", "--data", data, "--crop", "8", "8", "8", "--out", root / "p.csv"],
        "pixdim",
        names=str(path),
    )


@case("huge-spacing")
def _(root, shared):
    data = root / "cohort"
    flat_cohort(data)
    path = nii(data / "c0_image.nii.gz", volume(), np.diag([500.0, 1.0, 1.0, 1.0]))
    return Bad(
        ["padstats", "--data", data, "--crop", "8", "8", "8", "--out", root / "p.csv"],
        "spacing",
        names=str(path),
    )


@case("huge-header")
def _(root, shared):
    data = root / "cohort"
    flat_cohort(data)
    path = data / "c0_image.nii"
    (data / "c0_image.nii.gz").unlink()
    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 30000))
    header.set_data_dtype(np.int16)
    path.write_bytes(header.binaryblock + b"\0" * 4 + b"\1" * 64)
    return Bad(
        ["padstats", "--data", data, "--crop", "8", "8", "8", "--out", root / "p.csv"],
        "budget",
        names=str(path),
    )


@case("constant-image")
def _(root, shared):
    data = flat_cohort(root / "cohort", image=np.zeros((8, 8, 6), np.int16))
    return Bad(
        ["subtypes", "--data", data, "--out", root / "st"], "constant", names=str(data / "c0_image.nii.gz")
    )


@case("nan-voxels")
def _(root, shared):
    img = volume().astype(np.float32)
    img[1, 1, 1] = np.nan
    data = flat_cohort(root / "cohort", image=img)
    return Bad(
        ["padstats", "--data", data, "--crop", "8", "8", "8", "--out", root / "p.csv"],
        "NaN",
        names=str(data / "c0_image.nii.gz"),
    )


@case("corrupt-nifti")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    path = data / "c1_image.nii.gz"
    path.write_bytes(b"this is not a nifti file at all" * 20)
    return Bad(
        ["padstats", "--data", data, "--crop", "8", "8", "8", "--out", root / "p.csv"],
        "not a readable NIfTI",
        names=str(path),
    )


@case("truncated-nifti")
def _(root, shared):
    data = flat_cohort(root / "cohort", image=volume(shape=(40, 40, 30)), label=label((40, 40, 30)))
    path = data / "c0_image.nii.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return Bad(["subtypes", "--data", data, "--out", root / "st"], "truncated", names=str(path))


@case("label-shape-mismatch")
def _(root, shared):
    data = flat_cohort(root / "cohort", label=label((8, 8, 5)))
    return Bad(
        ["subtypes", "--data", data, "--out", root / "st"],
        "differs from image shape",
        names=str(data / "c0_label.nii.gz"),
    )


@case("label-spacing-mismatch")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    path = nii(data / "c0_label.nii.gz", label(), np.diag([2.0, 1.0, 1.0, 1.0]))
    return Bad(["subtypes", "--data", data, "--out", root / "st"], "affine differs", names=str(path))


@case("empty-folder")
def _(root, shared):
    data = root / "cohort"
    data.mkdir()
    return Bad(
        ["padstats", "--data", data, "--crop", "8", "8", "8", "--out", root / "p.csv"],
        "no images found",
        names=str(data),
    )


@case("missing-data-folder")
def _(root, shared):
    data = root / "nowhere"
    return Bad(
        ["padstats", "--data", data, "--crop", "8", "8", "8", "--out", root / "p.csv"],
        "does not exist",
        names=str(data),
    )


@case("symlink-loop")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    loop = data / "c9_image.nii.gz"
    loop.symlink_to(loop)
    return Bad(
        ["padstats", "--data", data, "--crop", "8", "8", "8", "--out", root / "p.csv"],
        "link",
        names=str(loop),
    )


@case("padstats-crop-zero")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    return Bad(["padstats", "--data", data, "--crop", "0", "8", "8", "--out", root / "p.csv"], "crop")


@case("prediction-not-binary")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    pred = root / "pred"
    for i in range(3):
        nii(pred / f"c{i}.nii.gz", label() * (3 if i == 1 else 1))
    return Bad(
        ["evaluate", "--pred", pred, "--data", data, "--out", root / "e.csv"],
        "not binary",
        names=str(pred / "c1.nii.gz"),
    )


@case("evaluate-tolerance-negative")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    pred = root / "pred"
    for i in range(3):
        nii(pred / f"c{i}.nii.gz", label())
    return Bad(
        ["evaluate", "--pred", pred, "--data", data, "--out", root / "e.csv", "--tolerance", "-1"],
        "tolerance",
    )


@case("evaluate-tolerance-nan")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    pred = root / "pred"
    for i in range(3):
        nii(pred / f"c{i}.nii.gz", label())
    return Bad(
        ["evaluate", "--pred", pred, "--data", data, "--out", root / "e.csv", "--tolerance", "nan"],
        "tolerance",
    )


@case("evaluate-missing-prediction")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    pred = root / "pred"
    nii(pred / "c0.nii.gz", label())
    return Bad(["evaluate", "--pred", pred, "--data", data, "--out", root / "e.csv"], "c1", names=str(pred))


# --- tables -------------------------------------------------------------------------------------------


def _compare_bad(root, column, values, needle):
    bad = eval_csv(root / "bad.csv", **{column: values})
    good = eval_csv(root / "good.csv")
    return Bad(["compare", good, bad, "--out", root / "t.csv"], needle, names=str(bad))


@case("compare-sdsc-text")
def _(root, shared):
    return _compare_bad(root, "sdsc", ["abc", 0.6, 0.0, 0.8], "sdsc")


@case("compare-sdsc-negative")
def _(root, shared):
    return _compare_bad(root, "sdsc", [-5, 0.6, 0.0, 0.8], "sdsc")


@case("compare-sdsc-above-one")
def _(root, shared):
    return _compare_bad(root, "sdsc", [7, 0.6, 0.0, 0.8], "sdsc")


@case("compare-vr-negative")
def _(root, shared):
    return _compare_bad(root, "vr", [-3, 1.2, 0.0, 0.9], "vr")


@case("compare-missing-file")
def _(root, shared):
    good = eval_csv(root / "good.csv")
    return Bad(
        ["compare", good, root / "absent.csv", "--out", root / "t.csv"],
        "not found",
        names=str(root / "absent.csv"),
    )


# --- checkpoints and devices ---------------------------------------------------------------------------


@case("pickle-named-safetensors")
def _(root, shared):
    path = root / "evil.safetensors"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2) + b"\x00" * 16)
    data = flat_cohort(root / "cohort")
    return Bad(
        ["adi", "--model", path, "--data", data, "--out", root / "o"], "evil.safetensors", names=str(path)
    )


@case("metadata-without-family")
def _(root, shared):
    path = safetensors_with_meta(root / "m.safetensors", json.dumps({"kwargs": {}}))
    data = flat_cohort(root / "cohort")
    return Bad(["adi", "--model", path, "--data", data, "--out", root / "o"], "family", names=str(path))


@case("metadata-not-a-dict")
def _(root, shared):
    path = safetensors_with_meta(root / "m.safetensors", json.dumps([1, 2, 3]))
    data = flat_cohort(root / "cohort")
    return Bad(["adi", "--model", path, "--data", data, "--out", root / "o"], "metadata", names=str(path))


@case("metadata-unknown-family")
def _(root, shared):
    path = safetensors_with_meta(root / "m.safetensors", json.dumps({"family": "resnet", "kwargs": {}}))
    data = flat_cohort(root / "cohort")
    return Bad(["adi", "--model", path, "--data", data, "--out", root / "o"], "resnet", names=str(path))


@case("metadata-huge-embed-dim")
def _(root, shared):
    from safetensors import safe_open
    from safetensors.torch import save_file

    src = checkpoint(root / "src.safetensors", shared)
    with safe_open(str(src), framework="pt") as fh:
        meta = json.loads(fh.metadata()["attndilute"])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    meta["kwargs"]["embed_dim"] = 10**9
    path = root / "huge.safetensors"
    save_file(tensors, str(path), metadata={"attndilute": json.dumps(meta), "format": "pt"})
    src.unlink()
    data = flat_cohort(root / "cohort")
    return Bad(["adi", "--model", path, "--data", data, "--out", root / "o"], "embed_dim", names=str(path))


@case("truncated-safetensors")
def _(root, shared):
    path = checkpoint(root / "m.safetensors", shared)
    path.write_bytes(path.read_bytes()[:200])
    data = flat_cohort(root / "cohort")
    return Bad(["adi", "--model", path, "--data", data, "--out", root / "o"], "truncated", names=str(path))


@case("empty-checkpoint")
def _(root, shared):
    path = root / "m.pt"
    path.write_bytes(b"")
    data = flat_cohort(root / "cohort")
    return Bad(["adi", "--model", path, "--data", data, "--out", root / "o"], "empty", names=str(path))


@case("header-length-past-end")
def _(root, shared):
    path = root / "m.safetensors"
    path.write_bytes(struct.pack("<Q", 10**6) + b'{"__metadata__": {}}')
    data = flat_cohort(root / "cohort")
    return Bad(["adi", "--model", path, "--data", data, "--out", root / "o"], "truncated", names=str(path))


@case("missing-checkpoint")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    path = root / "absent.safetensors"
    return Bad(["adi", "--model", path, "--data", data, "--out", root / "o"], "not found", names=str(path))


@case("device-without-cuda")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    return Bad(
        ["adi", "--model", "random:smit-tiny", "--data", data, "--out", root / "o", "--device", "cuda:0"],
        "no CUDA device",
    )


@case("device-unknown")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    return Bad(
        ["adi", "--model", "random:smit-tiny", "--data", data, "--out", root / "o", "--device", "tpu9"],
        "device",
    )


@case("crop-the-model-cannot-take")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    ckpt = checkpoint(root / "m.safetensors", shared)
    return Bad(
        ["adi", "--model", ckpt, "--data", data, "--out", root / "o", "--crop", "64", "64", "40"], "40"
    )


@case("cka-too-few-scans")
def _(root, shared):
    data = flat_cohort(root / "cohort", n=3)
    return Bad(["cka", "random:smit-tiny", "init:A", "--data", data, "--out", root / "o"], "3")


@case("train-resume-without-run")
def _(root, shared):
    data = flat_cohort(root / "cohort")
    return Bad(
        ["train", "--data", data, "--out", root / "run", "--resume"],
        "nothing to resume",
        names=str(root / "run"),
    )
