"""The trainer end to end on a 4-case phantom: resume = uninterrupted, determinism, DDP, predict, errors.

Small on purpose (SMIT tiny, 4 mm spacing, 64x32x32 crops, one step of batch 2 per epoch) so the module runs
in well under a minute on 2 cores.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from attndilute import models
from attndilute.data import preprocessing_meta
from attndilute.errors import AttnDiluteError
from attndilute.training import REPRODUCIBLE_COLUMNS, predict, read_metrics, train
from attndilute.training.train_presets import resolve_config

SMALL = dict(
    crop=(64, 32, 32), spacing=(4.0, 4.0, 4.0), crops_per_epoch=2, val_every=2, warmup=0.4, tta=False,
    val_fraction=0.5, batch_dice=False, progress=False,
)  # fmt: skip


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    from attndilute.data import write_phantom

    root = tmp_path_factory.mktemp("ph")
    old = os.environ.get("ATTNDILUTE_CACHE")
    os.environ["ATTNDILUTE_CACHE"] = str(root / "cache")
    write_phantom(root / "data", n=5, seed=0, profile="small")  # 4 train (2 fit + 2 validate), 1 test
    yield root / "data"
    if old is None:
        os.environ.pop("ATTNDILUTE_CACHE", None)
    else:
        os.environ["ATTNDILUTE_CACHE"] = old


@pytest.fixture(scope="module")
def full_run(phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    summary = train(phantom, out, "tiny", epochs=3, seed=3, **SMALL)
    return out, summary


def _columns(rows):
    return [[r[c] for c in REPRODUCIBLE_COLUMNS] for r in rows]


def _same(a, b, rtol=0.0):
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=rtol, abs=rtol * 1e-3)


def test_outputs_and_checkpoint_header(full_run):
    out, summary = full_run
    rows = read_metrics(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3] and summary.epochs == 3
    assert math.isnan(rows[0]["val_dice"]) and not math.isnan(rows[1]["val_dice"])
    assert 0 < rows[0]["lr"] == pytest.approx(rows[1]["lr"] / 2)  # 1 warmup step at half the peak
    assert summary.best_val_dice == pytest.approx(
        max(r["val_dice"] for r in rows if not math.isnan(r["val_dice"]))
    )
    model = models.load(out / "best.safetensors")
    assert model.attndilute_meta["crop"] == (64, 32, 32) and model.attndilute_meta["spacing"] == (
        4.0,
        4.0,
        4.0,
    )
    assert model.attndilute_meta["epoch"] == summary.best_epoch
    assert model.attndilute_meta["preprocessing"] == preprocessing_meta()
    assert (out / "curves.png").stat().st_size > 1000
    ckpt = torch.load(out / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 3 and {"model", "optimizer", "scheduler", "rng_torch", "best"} <= set(ckpt)
    assert not list(out.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_resume_reproduces_the_uninterrupted_run(full_run, phantom, tmp_path):
    out_full, _ = full_run
    out = tmp_path / "run"
    first = train(phantom, out, "tiny", epochs=3, seed=3, stop_after=2, **SMALL)
    assert first.epochs == 2 and len(read_metrics(out / "metrics.csv")) == 2
    with pytest.raises(AttnDiluteError, match="other lr"):  # a changed setting is refused, not ignored
        train(phantom, out, "tiny", resume=True, lr=0.5, progress=False)
    with pytest.raises(AttnDiluteError, match="other mask_padding, preset, seed"):  # given, and not the run's
        train(phantom, out, "tiny-act", resume=True, seed=4, mask_padding=True, progress=False)
    with pytest.raises(AttnDiluteError, match="has other preset"):  # a TrainConfig is compared whole
        train(phantom, out, resolve_config("tiny", lr=0.5), resume=True, progress=False)
    train(phantom, out, "tiny", resume=True, **SMALL)  # the saved settings, repeated, are accepted
    _same(_columns(read_metrics(out / "metrics.csv")), _columns(read_metrics(out_full / "metrics.csv")))
    a = torch.load(out / "last.ckpt", weights_only=True)["model"]
    b = torch.load(out_full / "last.ckpt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-identical weights at the end


def test_weight_average_is_validated_saved_and_resumed(full_run, phantom, tmp_path):
    out_full, _ = full_run
    out = tmp_path / "ema"
    train(phantom, out, "tiny", epochs=3, seed=3, stop_after=2, ema_decay=0.5, **SMALL)
    ckpt = torch.load(out / "last.ckpt", weights_only=True)
    saved = models.load(out / "best.safetensors").state_dict()  # the one validation so far: epoch 2
    average = {k.removeprefix("module."): v for k, v in ckpt["ema"].items() if k.startswith("module.")}
    assert int(ckpt["ema"]["n_averaged"]) == 2  # one update per step (1 step per epoch here)
    params = [k for k, _ in models.load(out / "best.safetensors").named_parameters()]
    assert all(torch.equal(saved[k], average[k]) for k in params)  # the average is what is saved
    assert not all(torch.equal(saved[k], ckpt["model"][k]) for k in params)  # not the raw weights
    train(phantom, out, "tiny", resume=True, **SMALL)
    again = tmp_path / "ema-full"
    train(phantom, again, "tiny", epochs=3, seed=3, ema_decay=0.5, **SMALL)
    _same(_columns(read_metrics(out / "metrics.csv")), _columns(read_metrics(again / "metrics.csv")))
    a = torch.load(out / "last.ckpt", weights_only=True)["ema"]
    b = torch.load(again / "last.ckpt", weights_only=True)["ema"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the average does not change the training itself: the losses are those of the plain run
    losses = [r["train_loss"] for r in read_metrics(again / "metrics.csv")]
    assert losses == [r["train_loss"] for r in read_metrics(out_full / "metrics.csv")]


def test_ddp_two_processes_match_one(full_run, phantom, tmp_path):
    """torchrun, gloo, 2 ranks x batch 1 = 1 process x batch 2 (global batch, all-reduced metrics)."""
    out_full, _ = full_run
    exe = Path(sys.executable).with_name("attndilute")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--no-python", str(exe), "train", "--data", str(phantom), "--out", str(out), "--preset", "tiny",
           "--epochs", "3", "--stop-after", "2", "--seed", "3", "--crop", "64", "32", "32",
           "--spacing", "4", "4", "4", "--crops-per-epoch", "2", "--val-every", "2", "--warmup", "0.4",
           "--tta", "false", "--val-fraction", "0.5", "--batch-dice", "false"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("train -> ") == 1  # only rank 0 reports
    ddp, one = read_metrics(out / "metrics.csv"), read_metrics(out_full / "metrics.csv")[:2]
    smooth = [c for c in REPRODUCIBLE_COLUMNS if "dice" not in c]
    _same([[r[c] for c in smooth] for r in ddp], [[r[c] for c in smooth] for r in one], rtol=1e-5)
    # validation Dice is an argmax over whole volumes: gloo sums the gradients in another order, and
    # a few voxels may flip (seen: 0.07504 vs 0.07522), so it gets an absolute tolerance
    for a, b in zip(ddp, one, strict=True):
        for c in ("val_dice", "best_val_dice"):
            assert (math.isnan(a[c]) and math.isnan(b[c])) or a[c] == pytest.approx(b[c], abs=1e-3), c


def test_ddp_refusal_of_the_run_folder_reaches_every_rank(phantom, tmp_path):
    """Rank 0 claims the folder; when it is refused, rank 1 must stop too rather than wait in DDP."""
    exe = Path(sys.executable).with_name("attndilute")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "--no-python",
        str(exe),
        "train",
        "--data",
        str(phantom),
        "--out",
        str(out),
        "--preset",
        "tiny",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.count("files it did not write") == 1 and "could not claim" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.md"]


def test_predict_writes_masks_in_source_geometry(full_run, phantom, tmp_path, cli):
    from attndilute.data import discover, load_nifti

    out_full, _ = full_run
    paths = predict(out_full / "best.safetensors", phantom, tmp_path / "pred", split="test",
                    probabilities=True, progress=False)  # fmt: skip
    cases = discover(phantom, split="test")
    assert [p.name for p in paths] == [f"{c.name}.nii.gz" for c in cases]
    for case, path in zip(cases, paths, strict=True):
        image, affine, _ = load_nifti(case.image)
        mask, mask_affine, _ = load_nifti(path)
        assert mask.shape == image.shape and np.allclose(mask_affine, affine, atol=1e-4)
        assert set(np.unique(mask)) <= {0, 1}
        prob, _, _ = load_nifti(tmp_path / "pred" / "probabilities" / path.name)
        assert prob.shape == image.shape and prob.min() >= 0 and prob.max() <= 1 + 1e-6
    code, _, err = cli("evaluate", "--pred", tmp_path / "pred", "--data", phantom, "--split", "test",
                       "--out", tmp_path / "eval.csv")  # fmt: skip
    assert code == 0, err


def test_predict_blend_is_chosen_and_checked(full_run, phantom, tmp_path, cli):
    from attndilute.data import load_nifti

    out_full, _ = full_run
    for blend in ("gaussian", "constant"):
        predict(out_full / "best.safetensors", phantom, tmp_path / blend, split="test", probabilities=True,
                progress=False, blend=blend)  # fmt: skip
    name = sorted((tmp_path / "constant").glob("*.nii.gz"))[0].name
    flat, _, _ = load_nifti(tmp_path / "constant" / "probabilities" / name)
    weighted, _, _ = load_nifti(tmp_path / "gaussian" / "probabilities" / name)
    assert np.abs(flat - weighted).max() > 1e-4  # the blend reaches the sliding window
    code, _, err = cli("predict", "--model", out_full / "best.safetensors", "--data", phantom,
                       "--out", tmp_path / "cli-no-tta", "--probabilities", "--no-tta")  # fmt: skip
    assert code == 0, err
    predict(out_full / "best.safetensors", phantom, tmp_path / "no-tta", split="test", probabilities=True,
            progress=False, tta=False)  # fmt: skip
    plain, _, _ = load_nifti(tmp_path / "cli-no-tta" / "probabilities" / name)
    assert np.array_equal(plain, load_nifti(tmp_path / "no-tta" / "probabilities" / name)[0])
    assert np.abs(plain - weighted).max() > 1e-4  # --no-tta reaches predict: without the flip, other values
    code, _, err = cli("predict", "--model", out_full / "best.safetensors", "--data", phantom,
                       "--out", tmp_path / "bad", "--blend", "mean")  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "blend 'mean'" in err and "gaussian" in err, err
    assert not (tmp_path / "bad").exists()


def test_predict_writes_all_cases_or_none(full_run, phantom, tmp_path, cli):
    """A damaged second image fails the run after the first case was segmented: nothing reaches --out."""
    out_full, _ = full_run
    images = tmp_path / "data" / "imagesTs"
    images.mkdir(parents=True)
    first, second = sorted((phantom / "imagesTr").glob("*.nii.gz"))[:2]
    shutil.copy(first, images / first.name)
    (images / second.name).write_bytes(second.read_bytes()[: second.stat().st_size // 2])
    code, _, err = cli("predict", "--model", out_full / "best.safetensors", "--data", images.parent,
                       "--out", tmp_path / "pred")  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and second.name in err, err
    assert not (tmp_path / "pred").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_model_from_other_preprocessing_is_refused(full_run, phantom, tmp_path, cli):
    out_full, _ = full_run
    model = models.load(out_full / "best.safetensors")
    other = models.save(model, tmp_path / "old.safetensors",
                        preprocessing={**preprocessing_meta(), "upper_percentile": 99.5})  # fmt: skip
    for args in (("predict", "--model", other, "--data", phantom, "--out", tmp_path / "pred"),
                 ("adi", "--model", other, "--data", phantom, "--out", tmp_path / "adi")):  # fmt: skip
        code, _, err = cli(*args)
        assert code == 2 and err.count("\n") == 1 and "upper_percentile 99.5 (now 99.0)" in err, err
        assert str(other) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.safetensors"]


def test_bad_input_is_one_line(phantom, tmp_path, cli, full_run):
    def fails(*args, match):
        code, _, err = cli("train", "--out", tmp_path / "bad", *args)
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and match in err, err
        assert not (tmp_path / "bad" / "last.ckpt").exists()

    fails("--data", phantom, "--crop", "60", "64", "64", match="divisible by 32")
    unlabeled = tmp_path / "nolabels" / "imagesTr"
    unlabeled.mkdir(parents=True)
    for image in sorted((phantom / "imagesTr").iterdir())[:2]:
        shutil.copy(image, unlabeled / image.name)
    fails("--data", unlabeled.parent, match="have no label")
    swin = models.save(models.build("swin-tiny"), tmp_path / "swin.safetensors")
    fails("--data", phantom, "--init", swin, match="the model is smit")
    fails("--data", phantom, "--preset", "smit-act", match="--init PATH")
    fails("--data", phantom, "--resume", match="nothing to resume")
    out_full, _ = full_run  # an explicit --seed that is not the run's is refused, the run left as it was
    before = (out_full / "last.ckpt").read_bytes()
    code, _, err = cli("train", "--out", out_full, "--resume", "--preset", "tiny", "--seed", "5")
    assert code == 2 and err.count("\n") == 1 and "other seed" in err, err
    assert (out_full / "last.ckpt").read_bytes() == before
    fails("--data", phantom, "--learning-rate", "1", match="unknown training setting")
    fails("--data", phantom, "--progress", "false", match="unknown training setting")
    fails("--data", phantom, "--tta", "maybe", match="expected true or false")
    fails("--data", phantom, "--lr=-1", match="lr must be > 0")  # --name=value form
    fails("--data", phantom, "--blend", "mean", match="blend must be one of gaussian, constant")
    fails("--data", phantom, "--folds", "3", match="go together")
    small = ("--crop", "64", "32", "32", "--spacing", "4", "4", "4", "--crops-per-epoch", "4")
    # a NaN loss stops the run before it writes anything
    fails("--data", phantom, *small, "--epochs", "1", "--lr", "1e30", match="training diverged")
