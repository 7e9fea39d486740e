"""Which modules to capture: transformer blocks and stages by default, or a glob of names.

A *block* is a module with ``attn.softmax`` and ``window_size`` (the MONAI block interface of
``docs/architecture.md``); a *stage* is a module with a ``blocks`` ``nn.ModuleList``. Both SMIT
and MONAI SwinUNETR expose them, so the default selection is every block output and every stage
output, numbered as the seed's S0..S3 (stage) and B0.. (block within the stage).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from torch import nn

from attndilute.errors import AttnDiluteError


@dataclass(frozen=True)
class LayerSpec:
    """One captured module.

    Args:
        name: module path in ``model.named_modules()``.
        kind: ``"block"``, ``"stage"`` or ``"module"``.
        stage: 0-based stage index (S0..), -1 outside any stage.
        block: 0-based block index within its stage, -1 for a stage or other module.
    """

    name: str
    kind: str
    stage: int
    block: int

    @property
    def label(self) -> str:
        """Short label for figures: ``S1.B0`` for a block, ``S1`` for a stage, else the name."""
        if self.kind == "block":
            return f"S{self.stage}.B{self.block}"
        if self.kind == "stage":
            return f"S{self.stage}"
        return self.name


def is_block(module: nn.Module) -> bool:
    """A windowed transformer block (MONAI block interface)."""
    attn = getattr(module, "attn", None)
    return attn is not None and hasattr(attn, "softmax") and hasattr(module, "window_size")


def is_stage(module: nn.Module) -> bool:
    """A stage: a module holding its blocks in ``blocks`` (an ``nn.ModuleList``)."""
    return isinstance(getattr(module, "blocks", None), nn.ModuleList)


def _execution_order(names: list[str]) -> list[str]:
    """Post-order of the module tree (a parent after its children), i.e. forward order."""
    position = {name: i for i, name in enumerate(names)}
    def last_descendant(name: str) -> int:
        prefix = f"{name}."
        return max((position[n] for n in names if n.startswith(prefix)), default=position[name])
    return sorted(names, key=lambda n: (last_descendant(n), -n.count(".")))


def select_layers(model: nn.Module, pattern: str | None = None) -> list[LayerSpec]:
    """The modules to capture, in forward order (blocks of a stage before the stage output).

    Args:
        model: any ``nn.Module``.
        pattern: ``None`` for every block and stage; otherwise a glob (``fnmatch``, comma
            separated for several) on module names, e.g. ``'swinViT.layers*'``. Containers
            without a forward (``ModuleList``, ``ModuleDict``) are skipped.

    Returns:
        One :class:`LayerSpec` per selected module.

    Raises:
        AttnDiluteError: nothing matched.
    """
    modules = dict(model.named_modules())
    stages = [name for name, m in modules.items() if name and is_stage(m)]
    stage_of: dict[str, tuple[int, int]] = {}
    for s, stage_name in enumerate(stages):
        for b, block in enumerate(modules[stage_name].blocks):
            for name, m in modules.items():
                if m is block:
                    stage_of[name] = (s, b)
    if pattern is None:
        chosen = [n for n, m in modules.items() if n and (is_block(m) or is_stage(m))]
        if not chosen:
            raise AttnDiluteError(
                f"{type(model).__name__} has no transformer blocks or stages to capture",
                hint="select modules with --layers GLOB",
            )
    else:
        globs = [g.strip() for g in pattern.split(",") if g.strip()]
        chosen = [
            n for n, m in modules.items()
            if n and not isinstance(m, nn.ModuleList | nn.ModuleDict)
            and any(fnmatch.fnmatchcase(n, g) for g in globs)
        ]
        if not chosen:
            raise AttnDiluteError(f"--layers {pattern!r} matches no module of {type(model).__name__}",
                                  hint="module names are those of model.named_modules()")
    specs = []
    for name in _execution_order(chosen):
        m = modules[name]
        prefix_stage = next((s for s, sn in enumerate(stages) if name == sn or name.startswith(f"{sn}.")), -1)
        if is_stage(m):
            specs.append(LayerSpec(name, "stage", stages.index(name), -1))
        elif is_block(m) and name in stage_of:
            specs.append(LayerSpec(name, "block", *stage_of[name]))
        else:
            specs.append(LayerSpec(name, "module", prefix_stage, -1))
    return specs
