"""One copy of plotly.js per results folder: ``plotly.min.js`` next to the pages, loaded by a
relative ``<script src>``, so the pages still open offline and a folder of many figures does not
carry one 4-5 MB bundle per page.

- :func:`ensure_plotly_js` writes plotly's own bundle into a folder once (an identical file is
  reused; a different file of that name is never replaced: the caller then embeds inline);
- :func:`script_src` is the relative ``src`` from a page to the bundle;
- :func:`share_plotly_js` rewrites every page under a folder that embeds the bundle inline to
  load the folder's single copy instead (``attndilute demo`` runs it last).

plotly is imported inside the functions (the study extra).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from attndilute._io import atomic_path

#: File name of the shared bundle.
PLOTLY_JS = "plotly.min.js"


def _bundle() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def ensure_plotly_js(folder: str | Path) -> Path | None:
    """``folder/plotly.min.js`` holding the installed plotly's bundle.

    Returns:
        its path; None when a different file of that name exists (it is left as it is).
    """
    path = Path(folder) / PLOTLY_JS
    bundle = _bundle()
    if path.is_file():
        return path if path.read_text(encoding="utf-8", errors="replace") == bundle else None
    with atomic_path(path) as tmp:
        tmp.write_text(bundle, encoding="utf-8")
    return path


def script_src(page: str | Path, bundle: str | Path) -> str:
    """The relative ``src`` (POSIX) from ``page`` to ``bundle``, e.g. ``../../plotly.min.js``."""
    rel = os.path.relpath(Path(bundle).resolve(), Path(page).resolve().parent)
    return Path(rel).as_posix()


def plotlyjs_option(page: str | Path) -> str | bool:
    """plotly's ``include_plotlyjs`` for a page: the relative src of a shared bundle in the page's
    folder, or ``True`` (inline) when that folder holds a foreign file named ``plotly.min.js``."""
    bundle = ensure_plotly_js(Path(page).parent)
    return True if bundle is None else script_src(page, bundle)


def share_plotly_js(root: str | Path, within: Sequence[str | Path] | None = None) -> list[Path]:
    """Make pages under ``root`` that embed plotly.js inline load ``root/plotly.min.js``.

    A page is rewritten (atomically) only when it holds exactly the installed plotly's bundle, so
    a page of another plotly version, or any other HTML, is left alone.

    Args:
        root: the folder of the shared bundle.
        within: only pages that are, or lie under, these paths (the files and folders the caller
            wrote); default every page under ``root``.

    Returns:
        the pages rewritten.
    """
    root = Path(root)
    bundle = _bundle()
    tops = [root] if within is None else [Path(w) for w in within]
    found = {p for top in tops if top.exists() for p in ([top] if top.is_file() else top.rglob("*.html"))}
    pages = sorted(p for p in found if p.is_file() and p.suffix == ".html")
    shared = None
    done = []
    for page in pages:
        text = page.read_text(encoding="utf-8", errors="replace")
        at = text.find(bundle)
        if at < 0:
            continue
        shared = shared or ensure_plotly_js(root)
        if shared is None:
            return done
        start = text.rfind("<script", 0, at)
        end = text.find("</script>", at + len(bundle))
        if start < 0 or end < 0 or not re.fullmatch(r"<script[^>]*>\s*", text[start:at]):
            continue
        tag = f'<script charset="utf-8" src="{script_src(page, shared)}"></script>'
        with atomic_path(page) as tmp:
            tmp.write_text(text[:start] + tag + text[end + len("</script>"):], encoding="utf-8")
        done.append(page)
    return done
