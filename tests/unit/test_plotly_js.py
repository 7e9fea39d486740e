"""``attndilute.plotly_js``: one plotly.js per results folder, loaded by relative src, never
replacing a file it did not write."""

from __future__ import annotations

import pytest

pytest.importorskip("plotly")


def _page(path, include=True):
    import plotly.graph_objects as go

    path.parent.mkdir(parents=True, exist_ok=True)
    go.Figure(go.Scatter(x=[0, 1], y=[1, 0])).write_html(str(path), include_plotlyjs=include)
    return path


def test_share_rewrites_inline_pages_to_one_copy(tmp_path):
    from attndilute.plotly_js import CARTESIAN_JS, share_plotly_js

    a = _page(tmp_path / "adi" / "base" / "adi.html")
    b = _page(tmp_path / "fig.html")
    other = _page(tmp_path / "cdn.html", include="cdn")
    before = other.read_bytes()
    assert a.stat().st_size > 1_000_000
    assert share_plotly_js(tmp_path) == [a, b]
    assert (tmp_path / "plotly.min.js").read_bytes() == CARTESIAN_JS.read_bytes()  # scatter only
    assert '<script charset="utf-8" src="../../plotly.min.js"></script>' in a.read_text()
    assert '<script charset="utf-8" src="plotly.min.js"></script>' in b.read_text()
    assert a.stat().st_size < 20_000 and "Plotly.newPlot(" in a.read_text()
    assert other.read_bytes() == before  # not an inline page: untouched
    assert share_plotly_js(tmp_path) == []  # idempotent


def test_a_foreign_plotly_min_js_is_never_replaced(tmp_path):
    from attndilute.plotly_js import ensure_plotly_js, plotlyjs_option, share_plotly_js

    mine = tmp_path / "plotly.min.js"
    mine.write_text("// my own file")
    page = _page(tmp_path / "fig.html")
    assert ensure_plotly_js(tmp_path) is None and plotlyjs_option(page) is True
    assert share_plotly_js(tmp_path) == []
    assert mine.read_text() == "// my own file"


def test_plotlyjs_option_is_a_relative_src(tmp_path):
    from attndilute.plotly_js import plotlyjs_option

    assert plotlyjs_option(tmp_path / "report.html") == "plotly.min.js"
    assert (tmp_path / "plotly.min.js").is_file()


def test_share_leaves_pages_outside_the_given_paths_alone(tmp_path):
    """The demo passes its own entries: a user's page elsewhere in D is not rewritten."""
    from attndilute.plotly_js import share_plotly_js

    ours = _page(tmp_path / "adi" / "base" / "adi.html")
    user = _page(tmp_path / "mine" / "notes.html")
    before = user.read_bytes()
    assert share_plotly_js(tmp_path, within=[tmp_path / "adi" / "base", tmp_path / "report.html"]) == [ours]
    assert user.read_bytes() == before


def test_a_page_of_other_trace_types_gets_the_full_bundle(tmp_path):
    """A 3-D trace is not in the cartesian bundle: the shared file is plotly's full one."""
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    from attndilute.plotly_js import share_plotly_js

    flat = _page(tmp_path / "flat.html")
    deep = tmp_path / "deep.html"
    go.Figure(go.Scatter3d(x=[0], y=[0], z=[0])).write_html(str(deep), include_plotlyjs=True)
    assert share_plotly_js(tmp_path) == [deep, flat]
    assert (tmp_path / "plotly.min.js").read_text() == get_plotlyjs()


def test_a_folder_with_the_cartesian_bundle_keeps_3d_pages_inline(tmp_path):
    import plotly.graph_objects as go

    from attndilute.plotly_js import CARTESIAN_JS, plotlyjs_option, share_plotly_js

    assert plotlyjs_option(tmp_path / "report.html", {"heatmap", "box"}) == "plotly.min.js"
    assert (tmp_path / "plotly.min.js").read_bytes() == CARTESIAN_JS.read_bytes()
    assert plotlyjs_option(tmp_path / "other.html", {"surface"}) is True  # inline, file untouched
    deep = tmp_path / "deep.html"
    go.Figure(go.Scatter3d(x=[0], y=[0], z=[0])).write_html(str(deep), include_plotlyjs=True)
    assert share_plotly_js(tmp_path) == []
    assert (tmp_path / "plotly.min.js").read_bytes() == CARTESIAN_JS.read_bytes()


def test_another_plotly_major_version_falls_back_to_the_full_bundle(tmp_path, monkeypatch):
    from plotly.offline import get_plotlyjs

    from attndilute import plotly_js

    plotly_js._cartesian.cache_clear()
    monkeypatch.setattr(plotly_js, "_full", lambda: "/**\n* plotly.js v99.0.0\n*/\n" + get_plotlyjs())
    try:
        assert plotly_js.folder_bundle({"scatter"}).startswith("/**\n* plotly.js v99.0.0")
    finally:
        plotly_js._cartesian.cache_clear()


def test_the_vendored_bundle_matches_the_installed_plotly_major_version():
    """If plotly.py moves to another plotly.js major version, refresh attndilute/assets from npm
    (plotly.js-cartesian-dist-min of that version): until then every folder gets the 4.8 MB bundle."""
    from attndilute.plotly_js import CARTESIAN_JS, folder_bundle

    assert folder_bundle({"scatter", "bar", "box", "heatmap", "histogram", "pie"}) == CARTESIAN_JS.read_text()


def test_every_trace_type_the_package_draws_is_in_the_cartesian_bundle():
    """The package's figures (``go.<Trace>(...)``) must all be drawable by the shared bundle."""
    import re
    from pathlib import Path

    import attndilute
    from attndilute.plotly_js import CARTESIAN_TRACES

    src = Path(attndilute.__file__).parent
    pattern = re.compile(r"\bgo\.([A-Z][A-Za-z0-9]+)\(")
    used = {m.lower() for f in src.rglob("*.py") for m in pattern.findall(f.read_text())}
    traces = used - {"figure", "layout"}
    assert traces and traces <= CARTESIAN_TRACES, traces - CARTESIAN_TRACES
