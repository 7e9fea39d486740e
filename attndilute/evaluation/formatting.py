"""Paper-style text for comparison tables: ``0.559 [0.428–0.719]``, ``86.2% [81.4–90.0]``.

Plain string building (no tabulate/jinja dependency): Markdown for notes and READMEs, LaTeX
(booktabs) for the paper, and the same cells for the CLI's rich tables.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("table", "markdown", "latex")


def median_iqr(median: float, q1: float, q3: float) -> str:
    """``0.559 [0.428–0.719]`` (three decimals, as Table 2)."""
    if any(math.isnan(v) for v in (median, q1, q3)):
        return "n/a"
    return f"{median:.3f} [{q1:.3f}–{q3:.3f}]"


def rate_interval(rate: float, low: float, high: float) -> str:
    """``86.2% [81.4–90.0]`` from fractions."""
    return f"{100 * rate:.1f}% [{100 * low:.1f}–{100 * high:.1f}]"


def p_value(p: float) -> str:
    """``<0.001`` below a thousandth, three decimals otherwise."""
    if math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def table_cells(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table in the seed's Table 2 style."""
    header = ["Configuration", "sDSC", "VR", "Det. rate", "Detected"]
    rows = [
        [
            str(r.config),
            median_iqr(r.sdsc_median, r.sdsc_q1, r.sdsc_q3),
            median_iqr(r.vr_median, r.vr_q1, r.vr_q3),
            rate_interval(r.detection_rate, r.detection_low, r.detection_high),
            f"{r.n_detected}/{r.n}",
        ]
        for r in table.itertuples()
    ]
    return header, rows


def tests_cells(tests: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the pairwise tests (Bonferroni-corrected Wilcoxon p, McNemar p).

    A pair is named in the order the configurations were given (``compare base act`` ->
    ``base vs act``); Δ detection is the second minus the first.
    """
    header = ["Comparison", "N paired", "sDSC p (Bonf.)", "VR p (Bonf.)", "Δ detection (2nd − 1st)",
              "McNemar p"]  # fmt: skip
    rows = [
        [
            f"{r.config_a} vs {r.config_b}",
            str(r.n_paired),
            p_value(r.sdsc_p_bonferroni),
            p_value(r.vr_p_bonferroni),
            f"{r.detection_diff_pp:+.1f} pp",
            p_value(r.detection_p),
        ]
        for r in tests.itertuples()
    ]
    return header, rows


def to_markdown(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _latex_escape(text: str) -> str:
    for char, repl in (("\\", r"\textbackslash{}"), ("%", r"\%"), ("&", r"\&"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(char, repl)
    return text.replace("–", "--").replace("Δ", r"$\Delta$").replace("<", "$<$")


def to_latex(header: list[str], rows: list[list[str]]) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
    lines = [
        r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}",
        r"\toprule",
        " & ".join(_latex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_latex_escape(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def render(header: list[str], rows: list[list[str]], fmt: str) -> str:
    """Render cells as ``markdown`` or ``latex``."""
    if fmt == "markdown":
        return to_markdown(header, rows)
    if fmt == "latex":
        return to_latex(header, rows)
    raise ValueError(f"unknown format {fmt!r}; expected markdown or latex")
