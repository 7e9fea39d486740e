"""Training presets, overrides, the warmup-cosine schedule and the case splits."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from attndilute.data import Case
from attndilute.errors import AttnDiluteError
from attndilute.training.presets import PRESETS, resolve_config
from attndilute.training.schedule import set_length, warmup_cosine
from attndilute.training.splits import split_cases


def test_presets_encode_the_seed_configurations():
    assert set(PRESETS) == {
        "tiny",
        "tiny-act",
        "smit-base",
        "smit-ta",
        "smit-act",
        "swin-base",
        "swin-ta",
        "swin-act",
    }
    assert PRESETS["tiny"].crop == (64, 64, 64) and PRESETS["tiny-act"].crop == (64, 64, 32)
    assert PRESETS["tiny"].model == PRESETS["tiny-act"].model == "smit-tiny"
    assert PRESETS["tiny"].spacing == (2.0, 2.0, 2.0) and not PRESETS["tiny"].tumor_aware
    assert PRESETS["tiny-act"].tumor_aware
    for name in ("smit-act", "swin-act"):
        assert PRESETS[name].crop == (128, 128, 64) and PRESETS[name].tumor_aware
    assert PRESETS["smit-base"].crop == (128, 128, 128) and PRESETS["swin-base"].crop == (96, 96, 96)
    seed = PRESETS["smit-ta"]
    assert (seed.lr, seed.weight_decay, seed.epochs, seed.batch_size, seed.warmup) == (
        3e-4,
        1e-5,
        500,
        2,
        0.1,
    )
    assert (seed.ta_scale, seed.ta_shift, seed.ta_prob, seed.overlap) == ((0.5, 1.5), (-0.2, 0.2), 0.3, 0.5)


def test_overrides_are_coerced_and_checked():
    c = resolve_config(
        "tiny", crop=["64", "64", "32"], lr="1e-4", tumor_aware="true", workers="1", epochs=None
    )
    assert c.crop == (64, 64, 32) and c.lr == 1e-4 and c.tumor_aware is True and c.workers == 1
    assert c.epochs == PRESETS["tiny"].epochs
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
