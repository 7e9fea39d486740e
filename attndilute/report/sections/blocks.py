"""The blocks a report section is made of (text, tables, figures, missing inputs) and the
section itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attndilute.report.load import Run


@dataclass(frozen=True)
class Text:
    """A paragraph."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table with an optional caption and reading."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    reading: str = ""


@dataclass(frozen=True)
class Figure:
    """A plotly figure with its one-sentence reading."""

    figure: Any
    reading: str
    caption: str = ""


@dataclass(frozen=True)
class DataTable:
    """A sortable table of raw rows with a CSV download (the per-scan table).

    Args:
        frame: the rows (pandas); numbers stay numbers, for sorting and for the CSV.
        filename: name of the downloaded CSV.
        caption: what the columns are.
    """

    frame: Any
    filename: str
    caption: str = ""


@dataclass(frozen=True)
class Missing:
    """An input that is absent (or unusable), with the command that produces it."""

    what: str
    path: str
    command: str = ""


@dataclass
class Section:
    """One section of the report.

    Args:
        key: short identifier (``cohort``, ``segmentation``, ``adi``, ``subtypes``, ``cka``,
            ``training``), also the HTML anchor.
        title: heading.
        cites: what of the seed it reproduces.
        blocks: content in order.
    """

    key: str
    title: str
    cites: str
    blocks: list = field(default_factory=list)

    @property
    def status(self) -> str:
        """``rendered`` (everything present), ``partial`` (something missing) or ``missing``."""
        shown = any(isinstance(b, Table | Figure | DataTable) for b in self.blocks)
        absent = any(isinstance(b, Missing) for b in self.blocks)
        return "partial" if shown and absent else "rendered" if shown else "missing"

    @property
    def n_figures(self) -> int:
        return sum(isinstance(b, Figure) for b in self.blocks)


def rel_path(run: Run, *parts: str) -> str:
    """A path inside the run folder, as the report prints it."""
    return str(run.root.joinpath(*parts))


def add_problems(run: Run, section: Section) -> None:
    """Append the unusable inputs that :func:`~attndilute.report.load.load_run` met for this section."""
    for p in run.problems_of(section.key):
        section.blocks.append(Missing(f"unusable input: {p.message}", str(p.path)))


def checkpoint_path(run: Run, config: str) -> str:
    """The checkpoint the demo writes for ``config``."""
    return rel_path(run, "runs", config, "best.safetensors")


