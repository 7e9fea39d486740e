"""Online instrumentation of windowed attention (seed §2.4): hooks that reduce as the model runs.

``measure_adi`` measures the attention dilution index of every block, head and scan;
``ADIMeter`` is the same as a reusable accumulator; ``key_padding_mask`` is the ``mask_padding``
context; ``register_adapter`` teaches the instrumentation a new kind of transformer. Importing
this package registers the built-in adapters: timm and Hugging Face
(:mod:`attndilute.instrument.adapters`, which never import those libraries themselves) before
the MONAI-interface Swin adapter.
"""

from attndilute.instrument import adapters  # noqa: F401 - registers the timm and Hugging Face adapters
from attndilute.instrument.masking import key_padding_mask
from attndilute.instrument.meter import ADIMeter, axial_padding_fraction, measure_adi
from attndilute.instrument.sites import (
    AttentionSite,
    SiteLayout,
    find_sites,
    list_adapters,
    register_adapter,
    swin_sites,
)

__all__ = [
    "ADIMeter",
    "AttentionSite",
    "SiteLayout",
    "axial_padding_fraction",
    "find_sites",
    "key_padding_mask",
    "list_adapters",
    "measure_adi",
    "register_adapter",
    "swin_sites",
]
