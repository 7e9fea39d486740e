"""One copy of plotly.js per results folder: ``plotly.min.js`` next to the pages, loaded by a
relative ``<script src>``, so the pages still open offline and a folder of many figures does not
carry one 4-5 MB bundle per page.

The shared file is plotly's official *cartesian* partial bundle (1.5 MB, vendored in
``attndilute/assets`` with its MIT licence) when it serves the figures: every trace is one of
:data:`CARTESIAN_TRACES` and the installed plotly.py writes figures for the same plotly.js major
version. Otherwise it is plotly.py's full bundle (4.8 MB). See docs/report.md.

- :func:`folder_bundle` is the text the shared file holds for a set of trace types;
- :func:`ensure_plotly_js` writes it into a folder once (an identical file is reused; a different
  file of that name is never replaced: the caller then embeds inline);
- :func:`script_src` is the relative ``src`` from a page to the bundle;
- :func:`share_plotly_js` rewrites every page under a folder that embeds the full bundle inline
  to load the folder's single copy instead (``attndilute demo`` runs it last).

plotly is imported inside the functions (the study extra).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

from attndilute._io import atomic_path

#: File name of the shared bundle.
PLOTLY_JS = "plotly.min.js"
#: The vendored partial bundle (``plotly.js-cartesian-dist-min`` from npm).
CARTESIAN_JS = Path(__file__).parent / "assets" / "plotly-cartesian.min.js"
#: Trace types the cartesian bundle registers (its README).
CARTESIAN_TRACES = frozenset({
    "bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour", "image",
    "pie", "scatter", "scatterternary", "violin",
})  # fmt: skip
_VERSION = re.compile(r"plotly\.js[^\n]*?v(\d+)\.\d+\.\d+")


def _full() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@cache
def _cartesian() -> str | None:
    """The vendored cartesian bundle, or None where its major version differs from plotly.py's."""
    if not CARTESIAN_JS.is_file():
        return None
    text = CARTESIAN_JS.read_text(encoding="utf-8")
    ours, theirs = _VERSION.search(text[:300]), _VERSION.search(_full()[:300])
    return text if ours and theirs and ours.group(1) == theirs.group(1) else None


def folder_bundle(traces: Iterable[str] = ("scatter",)) -> str:
    """The plotly.js text a folder's shared file holds for figures of these trace types:
    the cartesian bundle when it registers them all (and matches plotly.py's major version),
    else the full one."""
    cartesian = _cartesian()
    return cartesian if cartesian is not None and set(traces) <= CARTESIAN_TRACES else _full()


def trace_types(figures: Iterable) -> set[str]:
    """Trace types of plotly figures (``go.Figure``), e.g. ``{"scatter", "heatmap"}``."""
    return {trace.type for fig in figures for trace in fig.data}


def ensure_plotly_js(folder: str | Path, bundle: str | None = None) -> Path | None:
    """``folder/plotly.min.js`` holding ``bundle`` (default :func:`folder_bundle`).

    Returns:
        its path; None when a different file of that name exists (it is left as it is).
    """
    path = Path(folder) / PLOTLY_JS
    bundle = folder_bundle() if bundle is None else bundle
    if path.is_file():
        return path if path.read_text(encoding="utf-8", errors="replace") == bundle else None
    with atomic_path(path) as tmp:
        tmp.write_text(bundle, encoding="utf-8")
    return path


def script_src(page: str | Path, bundle: str | Path) -> str:
    """The relative ``src`` (POSIX) from ``page`` to ``bundle``, e.g. ``../../plotly.min.js``."""
    rel = os.path.relpath(Path(bundle).resolve(), Path(page).resolve().parent)
    return Path(rel).as_posix()


def plotlyjs_option(page: str | Path, traces: Iterable[str] = ("scatter",)) -> str | bool:
    """plotly's ``include_plotlyjs`` for a page with figures of these trace types: the relative
    src of the shared bundle in the page's folder, or ``True`` (inline) when that folder holds a
    foreign file named ``plotly.min.js`` or one that cannot draw these traces."""
    bundle = ensure_plotly_js(Path(page).parent, folder_bundle(traces))
    return True if bundle is None else script_src(page, bundle)


def _page_traces(text: str, start: int) -> set[str] | None:
    """Trace types of the ``Plotly.newPlot`` calls after ``start``; None if one cannot be read."""
    found: set[str] = set()
    decoder = json.JSONDecoder()
    for call in re.finditer(r"Plotly\.newPlot\(\s*\"[^\"]*\",\s*", text[start:]):
        try:
            data, _ = decoder.raw_decode(text, start + call.end())
        except ValueError:
            return None
        found |= {str(trace.get("type", "scatter")) for trace in data if isinstance(trace, dict)}
    return found


def share_plotly_js(root: str | Path, within: Sequence[str | Path] | None = None) -> list[Path]:
    """Make pages under ``root`` that embed plotly.js inline load ``root/plotly.min.js``.

    A page is rewritten (atomically) only when it holds exactly the installed plotly's bundle and
    the shared file draws all its traces, so a page of another plotly version, a page of other
    trace types, or any other HTML, is left alone.

    Args:
        root: the folder of the shared bundle.
        within: only pages that are, or lie under, these paths (the files and folders the caller
            wrote); default every page under ``root``.

    Returns:
        the pages rewritten.
    """
    root = Path(root)
    full = _full()
    tops = [root] if within is None else [Path(w) for w in within]
    found = {p for top in tops if top.exists() for p in ([top] if top.is_file() else top.rglob("*.html"))}
    pages = sorted(p for p in found if p.is_file() and p.suffix == ".html")
    inline = {}
    for page in pages:
        text = page.read_text(encoding="utf-8", errors="replace")
        at = text.find(full)
        start = text.rfind("<script", 0, at)
        end = text.find("</script>", at + len(full))
        if at < 0 or start < 0 or end < 0 or not re.fullmatch(r"<script[^>]*>\s*", text[start:at]):
            continue
        traces = _page_traces(text, end)
        if traces is not None:
            inline[page] = (text, start, end, traces)
    if not inline:
        return []
    bundle = folder_bundle(set().union(*(traces for *_, traces in inline.values())))
    shared = ensure_plotly_js(root, bundle)
    if shared is None:
        return []
    done = []
    for page, (text, start, end, _) in inline.items():
        tag = f'<script charset="utf-8" src="{script_src(page, shared)}"></script>'
        with atomic_path(page) as tmp:
            tmp.write_text(text[:start] + tag + text[end + len("</script>"):], encoding="utf-8")
        done.append(page)
    return done
