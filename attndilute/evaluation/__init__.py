"""The seed's evaluation protocol (§2.8, §3.1-3.2): per-case scores, Table 2, Fig. 4 E-F.

- :func:`evaluate` — per-case Dice, sDSC, VR, detection of a predictions folder (+ joins).
- :func:`compare` / :func:`compare_files` — Table 2 with Wilson intervals and paired tests.
- :func:`correlate` / :func:`correlate_file` — Spearman correlations, Fig. 4 E-F, subtypes.

The metric and statistics functions themselves are in :mod:`attndilute.metrics` and
:mod:`attndilute.stats`.
"""

from attndilute.evaluation.cases import EVAL_COLUMNS, evaluate, evaluate_cases, score_case
from attndilute.evaluation.compare import (
    MISSED_SDSC,
    MISSED_VR,
    TABLE_COLUMNS,
    TESTS_COLUMNS,
    Comparison,
    compare,
    compare_files,
)
from attndilute.evaluation.correlate import Correlations, correlate, correlate_file
from attndilute.evaluation.joins import join_tables

__all__ = [
    "EVAL_COLUMNS", "MISSED_SDSC", "MISSED_VR", "TABLE_COLUMNS", "TESTS_COLUMNS", "Comparison",
    "Correlations", "compare", "compare_files", "correlate", "correlate_file", "evaluate",
    "evaluate_cases", "join_tables", "score_case",
]  # fmt: skip
