"""Display names of models: a configuration, never a checkpoint file name or a folder path.

``cka`` and ``adi`` record the model they measured as given (``D/runs/act/best.safetensors``,
possibly inside a temporary folder that is gone later). Figures, captions and reports name it
with :func:`model_label` instead, so a title says ``act``, not ``best`` or a path.
"""

from __future__ import annotations

from pathlib import Path

#: Checkpoint file stems that name a training run's file, not the model: the folder names it.
RUN_FILE_STEMS = ("best", "last")


def model_label(model: str | Path, a_label: str = "A") -> str:
    """A short display name for a model spec.

    ``D/runs/act/best.safetensors`` -> ``act`` (the run folder, also inside a demo's temporary
    folder); ``other/model.pt`` -> ``model``; ``init:A`` -> ``random init of <a_label>``;
    ``random:smit-tiny`` -> itself.
    """
    text = str(model)
    if text.startswith("init:"):
        return f"random init of {a_label}"
    if text.startswith("random:"):
        return text
    path = Path(text)
    if path.stem in RUN_FILE_STEMS and path.parent.name:
        return path.parent.name
    return path.stem or text
