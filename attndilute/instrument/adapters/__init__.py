"""Adapters that teach the instrumentation third-party transformers (registered on import).

- :mod:`~attndilute.instrument.adapters.timm_adapters`: timm Swin v1/v2 and ViT-family attention.
- :mod:`~attndilute.instrument.adapters.hf_adapters`: Hugging Face ``transformers`` models.
"""

from attndilute.instrument.adapters.hf_adapters import hf_sites  # noqa: F401 - registers "hf" on import
from attndilute.instrument.adapters.timm_adapters import timm_sites
from attndilute.instrument.sites import register_adapter

register_adapter("timm", timm_sites)  # first: the MONAI-interface adapter would take timm Swin blocks
