"""The report's "What ADI is and how to read this page" box, and the paper it follows.

The citation is the seed paper's own title and authors (arXiv:2605.05522); README.md and the
docs cite it with the same words.
"""

from __future__ import annotations

import html

#: The seed paper, cited by name on the page, in README.md and in docs/report.md.
PAPER_TITLE = (
    "Tumor-aware augmentation with task-guided attention analysis improves rectal cancer "
    "segmentation from magnetic resonance images"
)
PAPER_AUTHORS = "Rangnekar A, Miranda J, Horvat N, et al."
PAPER_ARXIV = "arXiv:2605.05522"
PAPER_URL = "https://arxiv.org/abs/2605.05522"
CITATION = f"{PAPER_AUTHORS} {PAPER_TITLE}. {PAPER_ARXIV} [eess.IV], 2026."

_WHAT = (
    "Attention dilution is the share of a transformer's attention that goes to padding tokens "
    "instead of image tokens. The attention dilution index (ADI, Eq. 7) of a block is "
    "h_rp / (h_rr + h_rp): the attention entropy that real (image) queries spend on padding keys, "
    "over all the entropy they spend. It lies in [0, 1]: 0 means no attention reaches padding, 1 means "
    "all of it does. Padding comes from the volume (zero-padding a short scan to the crop, Eq. 4) or "
    "from the implementation (window arithmetic, 'layout padding'). A scan's stage ADI is the mean over "
    "that stage's blocks and heads (S0 shallow to the deepest stage); the cohort value is the mean and "
    "sd over scans."
)
_HOW = (
    "Sections follow the paper's order and each says which figure or table of the paper it reproduces. "
    "A badge says whether all of a section's inputs were found. Every bold sentence is computed from the "
    "numbers shown; it names a winner only when the groups differ as printed and hold at least 10 cases "
    "each. A yellow banner at the top says when the run cannot carry a conclusion (a fast demo, "
    "untrained models, small samples). Hover a figure for its values; the per-scan table sorts by a "
    "click on its header and downloads as CSV."
)


def about_html() -> str:
    """The box as an HTML fragment (``<section id="about">``)."""
    cite = (
        f"{html.escape(PAPER_AUTHORS)} <em>{html.escape(PAPER_TITLE)}</em>. "
        f'<a href="{PAPER_URL}">{PAPER_ARXIV}</a> [eess.IV], 2026.'
    )
    return (
        '<section id="about" class="about"><h2>What ADI is and how to read this page</h2>'
        f"<p>{html.escape(_WHAT)}</p><p>{html.escape(_HOW)}</p>"
        f'<p class="citation">Method and figures follow: {cite}</p></section>'
    )
