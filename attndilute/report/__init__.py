"""The study in one page: ``attndilute report --run D`` (seed §3, in the seed's order).

- :mod:`~attndilute.report.load`: a results folder into frames (absent parts stay absent);
- :mod:`~attndilute.report.summaries`: every number shown (front table, Table 1, ADI per stage, ...);
- :mod:`~attndilute.report.figures`: plotly figures, one per seed figure;
- :mod:`~attndilute.report.sections`: one module per section (cohort, segmentation, adi,
  subtypes, cka, training, scans) with its builder and its readings (pure functions: numbers in,
  one sentence out); ``sections.missing`` is the one table of inputs and the commands that write
  them;
- :mod:`~attndilute.report.wording`: what the readings share (thresholds, p format, lists);
- :mod:`~attndilute.report.html`: the page, loading the folder's one ``plotly.min.js``;
- :mod:`~attndilute.report.static`: the README's matplotlib figure and Markdown table.

Heavy libraries (pandas, plotly, xarray, matplotlib) are imported inside the functions.
"""

from __future__ import annotations

from attndilute.report.html import ReportResult, build_report, write_report

__all__ = ["ReportResult", "build_report", "write_report"]
