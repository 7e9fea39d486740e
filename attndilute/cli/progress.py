"""The one progress display of the command line: a rich bar on a terminal, quiet (or one line per
step) when stderr is a file, so logs stay readable and stdout keeps the results."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    track,
)


@dataclass
class Ticker:
    """Callbacks that move one bar; hand its methods to a library function's ``progress=``."""

    bar: Progress
    task: TaskID
    console: Console
    label: str

    def count(self, done: int, total: int | None) -> None:
        """``done`` of ``total`` items finished (``run_adi``, ``run_cka``)."""
        self.bar.update(self.task, completed=done, total=total)

    def item(self, name: str) -> None:
        """One more item finished, named ``name`` (``evaluate``)."""
        self.bar.update(self.task, advance=1, description=f"{self.label}: {name}")

    def step(self, name: str, index: int) -> None:
        """Step ``index`` (0-based) of the total starts; a log file gets one line per step."""
        self.bar.update(self.task, completed=index, description=f"{self.label}: {name}")
        if not self.console.is_terminal:
            total = self.bar.tasks[0].total
            self.console.print(f"[{index + 1}/{total:.0f}] {name} ...", markup=False, highlight=False)

    def done(self) -> None:
        self.bar.update(self.task, completed=self.bar.tasks[0].total, description=f"{self.label}: done")


@contextmanager
def progress(label: str, total: int | None = None, *, keep: bool = False) -> Iterator[Ticker]:
    """A bar on stderr labelled ``label``; ``keep`` leaves it on screen when done (the demo)."""
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=not keep, disable=not console.is_terminal) as bar:
        yield Ticker(bar, bar.add_task(label, total=total), console, label)


def tracker(description: str):
    """``seq -> seq`` that shows a bar while iterating (``progress=`` of phantom, padstats and
    subtypes, which take an iterable wrapper)."""
    err = Console(stderr=True)
    return lambda seq: track(seq, description=description, console=err, transient=True,
                             disable=not err.is_terminal)  # fmt: skip
