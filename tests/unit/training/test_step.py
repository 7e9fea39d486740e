"""The trainer's step (channels_last_3d, clipping, scheduler) and the precision policy."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss

from attndilute import models
from attndilute.errors import AttnDiluteError
from attndilute.training.precision import autocast, resolve_precision
from attndilute.training.step import CHANNELS_LAST, make_step, to_device
from attndilute.training.train_presets import resolve_config


def test_precision_policy():
    assert resolve_precision("auto", "cpu") == "fp32"  # CPU bf16 only on request
    assert resolve_precision("auto", "cuda") == "bf16"  # seed §2.5
    assert resolve_precision("bf16", "cpu") == "bf16" and resolve_precision("fp32", "cuda") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(AttnDiluteError, match="precision must be one of"):
        resolve_config("tiny", precision="fp16")
    x = torch.randn(4, 4)
    with autocast("bf16", "cpu"):
        assert (x @ x).dtype == torch.bfloat16
    with autocast("auto", "cpu"):
        assert (x @ x).dtype == torch.float32


def _batch(crop=(64, 32, 32), b=2):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(b, 1, *crop, generator=g)
    label = (torch.rand(b, 1, *crop, generator=g) > 0.9).long()
    return image, label, torch.ones(b, *crop, dtype=torch.bool)


def _model():
    torch.manual_seed(0)
    return models.build("smit-tiny", crop=(64, 32, 32))


def test_channels_last_gives_the_same_loss_and_gradients():
    image, label, real = _batch()
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    plain, fast = _model(), to_device(_model(), "cpu")
    conv = fast.encoder2.layer.conv1.conv.weight  # (12, 12, 3, 3, 3)
    assert conv.is_contiguous(memory_format=CHANNELS_LAST) and not conv.is_contiguous()
    loss_plain = loss_fn(plain(image, real=real), label)
    loss_fast = loss_fn(fast(image.contiguous(memory_format=CHANNELS_LAST), real=real), label)
    loss_plain.backward()
    loss_fast.backward()
    assert float(loss_fast.detach()) == pytest.approx(float(loss_plain.detach()), rel=1e-6)
    for (name, a), b in zip(fast.named_parameters(), plain.parameters(), strict=True):
        # float32 sums in another order: ~1e-3 of the gradient's norm, where a layout bug gives ~1
        assert torch.linalg.vector_norm(a.grad - b.grad) <= 1e-2 * torch.linalg.vector_norm(b.grad), name


def test_make_step_updates_clips_and_schedules():
    model = to_device(_model(), "cpu")
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 0.5 ** (k + 1))
    step = make_step(model, optimizer, DiceCELoss(to_onehot_y=True, softmax=True), device=torch.device("cpu"),
                     precision="fp32", grad_clip=0.01, scheduler=scheduler)  # fmt: skip
    losses = [step(*_batch()) for _ in range(2)]
    assert all(loss.ndim == 0 and not loss.requires_grad and torch.isfinite(loss) for loss in losses)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.25e-4)  # two scheduler steps
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm <= 0.01 * (1 + 1e-4)  # the last gradients were clipped
    assert all(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True) if p.grad.any())


def test_channels_last_model_saves_and_reloads(tmp_path):
    model = to_device(models.build("smit-tiny", crop=(64, 32, 32)), "cpu")
    path = models.save(model, tmp_path / "m.safetensors", crop=[64, 32, 32])
    again = models.load(path)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
