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
    from plotly.offline import get_plotlyjs

    from attndilute.plotly_js import share_plotly_js

    a = _page(tmp_path / "adi" / "base" / "adi.html")
    b = _page(tmp_path / "fig.html")
    other = _page(tmp_path / "cdn.html", include="cdn")
    before = other.read_bytes()
    assert a.stat().st_size > 1_000_000
    assert share_plotly_js(tmp_path) == [a, b]
    assert (tmp_path / "plotly.min.js").read_text() == get_plotlyjs()
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
