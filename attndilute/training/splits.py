"""Deterministic case splits: a held-out validation share, or K folds (seed: 3-fold cross-validation)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attndilute.data import Case
from attndilute.errors import AttnDiluteError

#: Seed of the case permutation. Fixed (not the run's seed) so that every configuration and
#: every training seed sees the same folds, as a paired comparison needs.
SPLIT_SEED = 0


def split_cases(
    cases: Sequence[Case], *, folds: int | None = None, fold: int | None = None, val_fraction: float = 0.2
) -> tuple[list[Case], list[Case]]:
    """Split labelled training cases into (train, validation).

    Cases are sorted by name and permuted with :data:`SPLIT_SEED`. With ``folds=K`` the
    permutation is cut into K near-equal parts (``np.array_split``) and part ``fold`` (0-based)
    validates; otherwise the first ``max(1, round(val_fraction * n))`` cases validate.

    Raises:
        AttnDiluteError: fewer than 2 cases, ``fold`` without ``folds`` (or the reverse), a fold
            out of range, or more folds than cases.
    """
    ordered = sorted(cases, key=lambda c: c.name)
    n = len(ordered)
    if n < 2:
        raise AttnDiluteError(
            f"training needs at least 2 labelled cases (1 to train, 1 to validate), got {n}"
        )
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    if (folds is None) != (fold is None):
        raise AttnDiluteError("--folds and --fold go together", hint="e.g. --folds 3 --fold 0")
    if folds is not None:
        if folds < 2 or folds > n:
            raise AttnDiluteError(f"--folds must be between 2 and the number of cases ({n}), got {folds}")
        if not 0 <= fold < folds:
            raise AttnDiluteError(f"--fold must be in 0..{folds - 1}, got {fold}")
        held = set(np.array_split(perm, folds)[fold].tolist())
    else:
        held = set(perm[: max(1, min(n - 1, round(val_fraction * n)))].tolist())
    train = [c for i, c in enumerate(ordered) if i not in held]
    val = [c for i, c in enumerate(ordered) if i in held]
    return train, val
