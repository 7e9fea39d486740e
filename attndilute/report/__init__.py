"""The study in one page: ``attndilute report --run D`` (seed §3, in the seed's order).

- :mod:`~attndilute.report.load`: a results folder into frames (absent parts stay absent);
- :mod:`~attndilute.report.summaries`: every number shown (front table, Table 1, ADI per stage, ...);
- :mod:`~attndilute.report.readings`: pure functions turning numbers into one-sentence readings;
- :mod:`~attndilute.report.figures`: plotly figures, one per seed figure;
- :mod:`~attndilute.report.sections`: the sections, each saying what is missing and how to make it;
- :mod:`~attndilute.report.html`: the self-contained page (plotly.js inline once);
- :mod:`~attndilute.report.static`: the README's matplotlib figure and Markdown table.

Heavy libraries (pandas, plotly, xarray, matplotlib) are imported inside the functions.
"""

from __future__ import annotations

from attndilute.report.html import ReportResult, build_report, write_report

__all__ = ["ReportResult", "build_report", "write_report"]
