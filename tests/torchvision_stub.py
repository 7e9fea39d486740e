"""A minimal torchvision stand-in, so ``import timm`` works where torchvision cannot be installed.

timm imports torchvision at module level in a few places (``timm.layers`` for
``FrozenBatchNorm2d``, ``timm.data`` for its transforms and data sets). On a CPU-only torch, PyPI's
torchvision wheel links CUDA operators the torch build lacks and fails to import ("operator
torchvision::nms does not exist"), and installing it risks replacing torch. :func:`install` puts
a finder on ``sys.meta_path`` that serves ``torchvision`` and its submodules:

- ``torchvision.ops.misc.FrozenBatchNorm2d`` is a real implementation (torchvision's own
  formula), the one thing timm's model code uses;
- every other name is an inert placeholder class: it can be imported, subclassed and looked up
  (``InterpolationMode.BILINEAR``), and raises ``RuntimeError`` when instantiated or called;
- ``torchvision.models`` is not served, so timm's optional FX feature extraction reports itself
  unavailable instead of failing later.

Only the tests and the timm examples use it (the examples load it by path); nothing in the
``attndilute`` package imports it. Install timm itself with ``pip install --no-deps timm``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

import torch
from torch import nn

_NOT_SERVED = ("torchvision.models",)  # absent on purpose: timm treats it as optional


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d whose statistics and affine parameters are fixed buffers (torchvision's).

    Args:
        num_features: channels C of the input (B, C, H, W).
        eps: added to the running variance.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        state_dict.pop(prefix + "num_batches_tracked", None)  # a BatchNorm2d checkpoint has it
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()  # (C,)
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class _PlaceholderMeta(type):
    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls.__qualname__}.{name}")


def _unavailable(self, *args, **kwargs):
    raise RuntimeError(f"{type(self).__qualname__} needs torchvision, which is not installed (stand-in)")


def _placeholder(qualname: str) -> type:
    """An inert class: importable, subclassable, attribute look-ups give more placeholders."""
    body = {"__init__": _unavailable, "__call__": _unavailable}
    cls = _PlaceholderMeta(qualname.rsplit(".", 1)[-1], (), body)
    cls.__qualname__ = qualname
    return cls


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _placeholder(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        return _StubModule(spec.name)

    def exec_module(self, module):
        module.__version__ = "0.0+stub"
        module.__path__ = []  # every module is a package: submodules import
        if module.__name__ == "torchvision.ops.misc":
            module.FrozenBatchNorm2d = FrozenBatchNorm2d


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision" and not fullname.startswith("torchvision."):
            return None
        if any(fullname == n or fullname.startswith(n + ".") for n in _NOT_SERVED):
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)


def _real_torchvision_works() -> bool:
    try:
        from torchvision.ops.misc import FrozenBatchNorm2d as _  # noqa: F401
    except Exception:  # noqa: BLE001 - absent, or present but broken (CUDA operators missing)
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        return False
    return True


def install() -> bool:
    """Serve the stand-in for ``torchvision`` unless a working torchvision imports.

    Returns:
        True if the stand-in is (now or already) installed, False if the real torchvision is used.
    """
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return True
    if _real_torchvision_works():
        return False
    sys.meta_path.insert(0, _Finder())
    return True
