"""``train``, ``predict`` and ``demo`` say what they will run with before they work."""

from __future__ import annotations

import pytest
import torch


def test_train_settings_name_every_default():
    from attndilute.resolved import describe, train_settings

    lines = describe("train", train_settings(None, device="cpu"))
    assert lines == [
        "train: model smit-tiny (smit), crop 64x64x64, spacing 2x2x2 mm, device cpu",
        "warning: --preset not given: using 'tiny'",
        "warning: --crop not given: using the preset's 64x64x64",
        "warning: --spacing not given: using the preset's 2x2x2 mm",
    ]
    given = describe("train", train_settings("tiny-act", (64, 64, 48), (2.0, 2.0, 2.0), "cpu"))
    assert given == ["train: model smit-tiny (smit), crop 64x64x48, spacing 2x2x2 mm, device cpu"]


def test_cli_train_prints_settings_before_it_fails(cli, tmp_path):
    code, out, err = cli("train", "--out", tmp_path / "run", "--data", tmp_path / "absent", "--device", "cpu")
    assert code == 2
    lines = out.splitlines()  # on stdout, so stderr keeps its one error line
    assert lines[0] == "train: model smit-tiny (smit), crop 64x64x64, spacing 2x2x2 mm, device cpu"
    assert lines[1] == "warning: --preset not given: using 'tiny'"
    assert err.count("\n") == 1 and err.startswith("error:")


def test_cli_predict_prints_the_checkpoints_settings(cli, tiny_cohort, tmp_path):
    data, ckpt = tiny_cohort
    out = tmp_path / "p"
    code, stdout, err = cli("predict", "--model", ckpt, "--data", data, "--out", out, "--blend", "bogus")
    assert code == 2 and err.count("\n") == 1
    first = "predict: model smit-tiny (smit), crop 64x32x32, spacing 4x4x4 mm, device cpu"
    assert stdout.splitlines()[0] == first
    assert stdout.splitlines()[1].startswith("warning: --device auto (the default): using cpu")


@pytest.mark.parametrize("command", ["train", "predict"])
def test_a_missing_device_is_one_line(cli, tiny_cohort, tmp_path, command):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    data, ckpt = tiny_cohort
    args = ("--model", ckpt) if command == "predict" else ()
    code, _, err = cli(command, *args, "--data", data, "--out", tmp_path / "o", "--device", "cuda:3")
    assert code == 2 and err.strip().splitlines() == [err.strip()] and "no CUDA device" in err
    assert not (tmp_path / "o").exists()
