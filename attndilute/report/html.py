"""Assemble the report: one HTML page and, beside it, one ``plotly.min.js``; no network.

The first figure loads plotly.js with a relative ``<script src="plotly.min.js">``
(:mod:`attndilute.plotly_js`: the folder's single copy, shared with the run's other pages) and
every later one uses it, so the page opens offline as long as the bundle stays beside it. Where a
foreign ``plotly.min.js`` is in the way the bundle is embedded inline instead. Div ids are fixed
(``fig-<section>-<n>``), so the same folder gives the same page.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path

from attndilute import __version__
from attndilute._io import atomic_path, claim_files
from attndilute.plotly_js import plotlyjs_option, trace_types
from attndilute.report.about import about_html
from attndilute.report.caveats import banner_lines
from attndilute.report.load import load_run
from attndilute.report.sections import DataTable, Figure, Missing, Section, Table, Text, build_sections
from attndilute.report.summaries import front_table, table_csv

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1080px; padding: 0 1.2rem 4rem; color: #222; line-height: 1.45; }
h1 { margin-top: 1.5rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.4rem; }
.cites { color: #777; font-size: .9rem; margin-top: -.6rem; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; }
.badge { font-size: .75rem; padding: .05rem .4rem; border-radius: .6rem; margin-left: .3rem; }
.rendered { background: #e3f4e8; color: #1d6b35; } .partial { background: #fff4d6; color: #8a6100; }
.missing { background: #fde2e1; color: #9b1c1c; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .92rem; }
th, td { border-bottom: 1px solid #e5e5e5; padding: .3rem .7rem; text-align: left; }
th { background: #f6f6f6; }
caption { caption-side: bottom; text-align: left; color: #666; font-size: .85rem; padding-top: .3rem; }
figure { margin: 1.2rem 0 1.8rem; } figcaption { color: #555; font-size: .88rem; }
.reading { font-weight: 600; color: #14365d; margin: .4rem 0; }
.note { background: #fafafa; border-left: 3px solid #d9534f; padding: .4rem .8rem; margin: .6rem 0; }
.banner { background: #fff4d6; border: 2px solid #e0a800; border-radius: 6px; padding: .5rem 1rem;
          margin: 1rem 0; } .banner strong { color: #8a4b00; } .banner p { margin: .35rem 0; }
.about { background: #f4f8fc; border: 1px solid #d5e3f0; border-radius: 6px; padding: .2rem 1rem .6rem;
         font-size: .92rem; } .about h2 { margin-top: .6rem; border: none; } .citation { color: #444; }
.sortable th { cursor: pointer; user-select: none; white-space: nowrap; }
.sortable th[aria-sort="ascending"]::after { content: " ▲"; }
.sortable th[aria-sort="descending"]::after { content: " ▼"; }
.sortable td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; max-width: 100%; }
code { background: #f2f2f2; padding: 0 .25rem; border-radius: 3px; font-size: .88em; }
"""


@dataclass(frozen=True)
class ReportResult:
    """What :func:`write_report` wrote.

    Args:
        path: the HTML file.
        sections: ``(key, title, status, n_figures)`` per section, in page order.
        seconds: wall time of loading, building and writing.
    """

    path: Path
    sections: tuple[tuple[str, str, str, int], ...]
    seconds: float


class _Figures:
    """Renders figures to HTML divs; the first one carries the plotly.js bundle."""

    def __init__(self, plotlyjs: str | bool = True) -> None:
        self.count = 0
        self.plotlyjs = plotlyjs

    def render(self, fig, div_id: str) -> str:
        first = self.count == 0
        self.count += 1
        return fig.to_html(
            full_html=False,
            include_plotlyjs=self.plotlyjs if first else False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True, "displayModeBar": "hover"},
        )


def _table(block: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block.rows
    )
    caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
    reading = f'<p class="reading">{html.escape(block.reading)}</p>' if block.reading else ""
    return f"{reading}<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


#: Sorts a ``table.sortable`` by the clicked header: numbers (``data-v``) numerically, empty last.
_SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var up = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col], v = cell.getAttribute('data-v');
        return v === null ? cell.textContent : (v === '' ? null : parseFloat(v));
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return (x === null) - (y === null); }
        var c = (typeof x === 'number') ? x - y : String(x).localeCompare(String(y));
        return up ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

_HEADERS = {"scan": "Scan", "configuration": "Configuration", "subtype": "Subtype",
            "padding_fraction": "Padding fraction", "dice": "Dice", "sdsc": "sDSC", "detected": "Detected"}


def _cell(value, column: str) -> str:
    """One ``<td>``: numbers carry their raw value in ``data-v`` for sorting."""
    import math

    if isinstance(value, bool) or column == "detected":
        text = "" if value is None or value != value else ("yes" if bool(value) else "no")
        return f"<td>{text}</td>"
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return '<td class="num" data-v=""></td>'
        digits = 4 if column.endswith("ADI") else 3
        return f'<td class="num" data-v="{value!r}">{value:.{digits}f}</td>'
    text = "" if value is None else str(value)
    return f"<td>{html.escape('' if text == 'nan' else text)}</td>"


def _data_table(block: DataTable) -> str:
    """A sortable table with a CSV download link (a ``data:`` URL, so the page stays one file)."""
    from urllib.parse import quote


    frame = block.frame
    head = "".join(f'<th scope="col">{html.escape(_HEADERS.get(c, c))}</th>' for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(_cell(v, c) for c, v in zip(frame.columns, row, strict=True)) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    href = "data:text/csv;charset=utf-8," + quote(table_csv(frame))
    link = (f'<p><a class="download" download="{html.escape(block.filename)}" href="{href}">Download '
            f"this table as CSV ({html.escape(block.filename)}, {len(frame)} rows)</a></p>")
    caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
    return (f'{link}<div class="scroll"><table class="sortable" id="per-scan">{caption}<thead><tr>{head}'
            f"</tr></thead><tbody>{body}</tbody></table></div><script>{_SORT_JS}</script>")


def _missing(block: Missing) -> str:
    command = f" Produce it with <code>{html.escape(block.command)}</code>." if block.command else ""
    return (
        f'<p class="note">Missing: {html.escape(block.what)} (<code>{html.escape(block.path)}</code>).'
        f"{command}</p>"
    )


def _section(sec: Section, figures: _Figures) -> str:
    parts = [
        f'<section id="{sec.key}"><h2>{html.escape(sec.title)}'
        f'<span class="badge {sec.status}">{sec.status}</span></h2>',
        f'<p class="cites">Reproduces {html.escape(sec.cites)}.</p>',
    ]
    n = 0
    for block in sec.blocks:
        if isinstance(block, Text):
            parts.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, Missing):
            parts.append(_missing(block))
        elif isinstance(block, DataTable):
            parts.append(_data_table(block))
        elif isinstance(block, Figure):
            n += 1
            caption = f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
            parts.append(
                f'<figure><p class="reading">{html.escape(block.reading)}</p>'
                f"{figures.render(block.figure, f'fig-{sec.key}-{n}')}{caption}</figure>"
            )
    parts.append("</section>")
    return "\n".join(parts)


def banner_html(lines: list[str]) -> str:
    """The warning banner (``<div id="banner" role="alert">``), or "" when nothing applies."""
    if not lines:
        return ""
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return (f'<div id="banner" class="banner" role="alert"><strong>Read with care: these numbers do not '
            f"support conclusions.</strong>{body}</div>")


def render_page(run, sections: list[Section], plotlyjs: str | bool = True) -> str:
    """The whole page as one string.

    Args:
        run: the loaded results folder.
        sections: :func:`~attndilute.report.sections.build_sections`.
        plotlyjs: how the first figure loads plotly.js: a relative ``src`` or True (inline).
    """
    figures = _Figures(plotlyjs)
    nav = "".join(
        f'<li><a href="#{s.key}">{html.escape(s.title)}</a><span class="badge {s.status}">'
        f"{s.status}</span></li>"
        for s in sections
    )
    glance = ""
    front = front_table(run)
    if front is not None:
        glance = (
            '<section id="glance"><h2>At a glance</h2>'
            + _table(
                Table(
                    *front,
                    caption="sDSC and VR: median [IQR] (§2.8 penalties); detection with "
                    "Wilson 95% interval; ADI: mean ± sd over scans.",
                )
            )
            + "</section>"
        )
    body = "\n".join(_section(s, figures) for s in sections)
    title = f"attndilute report — {run.root.resolve().name}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>Attention dilution report</h1>
<p>Results folder <code>{html.escape(str(run.root))}</code>, configurations
{html.escape(", ".join(run.configs) or "none found")}; attndilute {html.escape(__version__)}.
Sections follow the seed paper's order; every sentence in bold is computed from the numbers shown.</p>
{banner_html(banner_lines(run))}
<nav><ul>{nav}</ul></nav>
</header>
{about_html()}
{glance}
{body}
</body>
</html>
"""


def write_report(
    run_dir: str | Path, out: str | Path | None = None, *, overwrite: bool = False
) -> ReportResult:
    """Read a results folder and write its report atomically.

    Args:
        run_dir: the results folder (``attndilute demo --out D``).
        out: the HTML file; default ``run_dir/report.html``. Claimed with
            :func:`attndilute._io.claim_files`: an existing file is replaced only if ``report``
            wrote it, or with ``overwrite``.
        overwrite: replace an existing ``out`` that ``report`` did not write.

    Raises:
        AttnDiluteError: ``run_dir`` is not a folder. Missing or unreadable inputs never raise:
            their sections say what is missing.
    """
    start = time.perf_counter()
    run = load_run(run_dir)
    path = Path(out) if out is not None else run.root / "report.html"
    with claim_files([path], "report", overwrite=overwrite):
        sections = build_sections(run)
        figures = [b.figure for s in sections for b in s.blocks if isinstance(b, Figure)]
        page = render_page(run, sections, plotlyjs_option(path, trace_types(figures)) if figures else False)
        with atomic_path(path) as tmp:
            tmp.write_text(page, encoding="utf-8")
    summary = tuple((s.key, s.title, s.status, s.n_figures) for s in sections)
    return ReportResult(path, summary, time.perf_counter() - start)


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of a results folder; return its path (see :func:`write_report`)."""
    return write_report(run_dir, out).path
