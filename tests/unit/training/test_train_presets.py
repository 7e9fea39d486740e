"""Training presets, overrides, the warmup-cosine schedule and the case splits."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from attndilute.data import Case
from attndilute.errors import AttnDiluteError
from attndilute.training.schedule import set_length, warmup_cosine
from attndilute.training.splits import split_cases
from attndilute.training.train_presets import TRAIN_PRESETS, resolve_config


def test_presets_encode_the_seed_configurations():
    assert set(TRAIN_PRESETS) == {
        "tiny",
        "tiny-act",
        "smit-base",
        "smit-ta",
        "smit-act",
        "swin-base",
        "swin-ta",
        "swin-act",
        "swin-act-96",
    }
    assert TRAIN_PRESETS["swin-act-96"].crop == (96, 96, 64) and TRAIN_PRESETS["swin-act-96"].tumor_aware
    assert TRAIN_PRESETS["tiny"].crop == (64, 64, 64) and TRAIN_PRESETS["tiny-act"].crop == (64, 64, 32)
    assert TRAIN_PRESETS["tiny"].model == TRAIN_PRESETS["tiny-act"].model == "smit-tiny"
    assert TRAIN_PRESETS["tiny"].spacing == (2.0, 2.0, 2.0) and not TRAIN_PRESETS["tiny"].tumor_aware
    assert TRAIN_PRESETS["tiny-act"].tumor_aware
    for name in ("smit-act", "swin-act"):
        assert TRAIN_PRESETS[name].crop == (128, 128, 64) and TRAIN_PRESETS[name].tumor_aware
    assert TRAIN_PRESETS["smit-base"].crop == (128, 128, 128)
    assert TRAIN_PRESETS["swin-base"].crop == (96, 96, 96)
    seed = TRAIN_PRESETS["smit-ta"]
    assert (seed.lr, seed.weight_decay, seed.epochs, seed.batch_size, seed.warmup) == (
        3e-4,
        1e-5,
        500,
        2,
        0.1,
    )
    assert (seed.ta_scale, seed.ta_shift, seed.ta_prob, seed.overlap) == ((0.5, 1.5), (-0.2, 0.2), 0.3, 0.5)


@pytest.mark.parametrize("name", [n for n, c in TRAIN_PRESETS.items() if c.pretrained])
def test_seed_presets_warm_up_for_50_epochs_also_as_scratch(name):
    """§2.5.1: 50 warmup epochs, for the 500-epoch fine-tuning and the 1000-epoch Scratch runs."""
    base = resolve_config(name)
    scratch = resolve_config(base, epochs=int(round(base.epochs * base.scratch_factor)))
    assert base.warmup_epochs == scratch.warmup_epochs == 50
    assert (base.epochs, scratch.epochs) == (500, 1000)
    steps_per_epoch = 3
    for config in (base, scratch):
        assert config.warmup_steps(steps_per_epoch) == 150
        opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = warmup_cosine(opt, config.epochs * steps_per_epoch, warmup_steps=config.warmup_steps(3))
        lrs = []
        for _ in range(152):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        assert all(a < b for a, b in zip(lrs[:150], lrs[1:151], strict=True))  # rising for 50 epochs
        assert lrs[150] == pytest.approx(1.0) and lrs[151] < 1.0  # the peak at epoch 50, then cosine
    assert resolve_config("tiny").warmup_epochs is None  # the CPU presets keep a 10% fraction
    assert resolve_config("tiny", warmup_epochs="5").warmup_steps(16) == 80
    fraction = resolve_config("smit-base", warmup="0.05", epochs=20)  # an explicit fraction wins
    assert fraction.warmup_epochs is None and fraction.warmup_steps(3) == 3


def test_trainer_scratch_run_keeps_the_50_warmup_epochs(monkeypatch, tmp_path):
    """train(..., scratch=True) doubles the epochs and keeps the warmup at 50 epochs."""
    import attndilute.training.loop as loop

    seen = {}

    def fake_run(spec, *args, **kwargs):
        seen["config"] = spec.config
        return None

    monkeypatch.setattr(loop, "_run", fake_run)
    loop.train(None, tmp_path / "r", "swin-act-96", scratch=True)
    assert seen["config"].epochs == 1000 and seen["config"].warmup_steps(2) == 100


def test_overrides_are_coerced_and_checked():
    c = resolve_config(
        "tiny", crop=["64", "64", "32"], lr="1e-4", tumor_aware="true", workers="1", epochs=None
    )
    assert c.crop == (64, 64, 32) and c.lr == 1e-4 and c.tumor_aware is True and c.workers == 1
    assert c.epochs == TRAIN_PRESETS["tiny"].epochs
    assert resolve_config("tiny", crops_per_epoch=0).crops_per_epoch is None
    assert resolve_config("tiny", dice_background="off").dice_background is False
    with pytest.raises(AttnDiluteError, match="expected true or false"):
        resolve_config("tiny", tta="maybe")
    with pytest.raises(AttnDiluteError, match="unknown training setting"):
        resolve_config("tiny", learning_rate=1)
    with pytest.raises(AttnDiluteError, match="unknown training preset"):
        resolve_config("huge")
    with pytest.raises(AttnDiluteError, match="bad value"):
        resolve_config("tiny", crop=[64, 64])
    with pytest.raises(AttnDiluteError, match="warmup"):
        resolve_config("tiny", warmup=1.5)


def test_schedule_is_linear_warmup_then_cosine():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = warmup_cosine(opt, total_steps=100, warmup_fraction=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    for step, lr in enumerate(lrs):
        cosine = 0.5 * (1 + math.cos(math.pi * (step - 10) / 90))
        expected = 2.0 * ((step + 1) / 11 if step < 10 else cosine)
        assert lr == pytest.approx(expected, abs=1e-9)
    assert lrs[0] > 0  # the first step learns


def test_schedule_length_can_grow_on_resume():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, total_steps=20, warmup_fraction=0.1)
    for _ in range(5):
        opt.step()
        sched.step()
    set_length(sched, total_steps=40, warmup_fraction=0.1)  # as a resume with twice the epochs
    fresh = warmup_cosine(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 40, 0.1)
    assert sched.lr_lambdas[0](5) == pytest.approx(fresh.lr_lambdas[0](5))
    assert sched.lr_lambdas[0](2) == pytest.approx(fresh.lr_lambdas[0](2)) == pytest.approx(3 / 5)


def test_splits_are_deterministic_and_partition():
    cases = [Case(f"c{i:02d}", Path(f"c{i:02d}.nii.gz")) for i in range(10)]
    folds = [split_cases(cases[::-1], folds=3, fold=k) for k in range(3)]
    vals = [sorted(c.name for c in v) for _, v in folds]
    assert sorted(sum(vals, [])) == [c.name for c in cases]  # each case validates exactly once
    assert [len(v) for v in vals] == [4, 3, 3]
    for train, val in folds:
        assert not {c.name for c in train} & {c.name for c in val}
    assert split_cases(cases, folds=3, fold=1) == split_cases(list(reversed(cases)), folds=3, fold=1)
    train, val = split_cases(cases, val_fraction=0.2)
    assert len(val) == 2 and len(train) == 8
    with pytest.raises(AttnDiluteError, match="go together"):
        split_cases(cases, folds=3)
    with pytest.raises(AttnDiluteError, match="--fold must be"):
        split_cases(cases, folds=3, fold=3)
    with pytest.raises(AttnDiluteError, match="at least 2"):
        split_cases(cases[:1])
