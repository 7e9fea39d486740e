"""The one table of the report's inputs: for each, what it is called, where it lies in the run
folder and the command that writes it. A section with an absent input shows that line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attndilute.report.sections.blocks import Missing, checkpoint_path, rel_path

if TYPE_CHECKING:
    from attndilute.report.load import Run

#: input -> (what, file, command's --out, command). Paths are relative to the run folder and may
#: hold ``{config}`` or ``{name}``; the command may use ``{data}``, ``{out}``,
#: ``{model}`` (the config's checkpoint) and ``{model_b}``.
INPUTS: dict[str, tuple[str, str, str, str]] = {
    "cohort": ("cohort table", "data/phantom.csv", "data", "attndilute phantom --out {out}"),
    "padstats": ("padding statistics", "padstats.csv", "padstats.csv",
                 "attndilute padstats --data {data} --crop X Y Z --out {out}"),
    "eval": ("per-case evaluation of {config}", "eval/{config}.csv", "eval/{config}.csv",
             "attndilute evaluate --pred PREDICTIONS --data {data} --out {out}"),
    "adi": ("ADI of {config}", "adi/{config}/adi_stages.csv", "adi/{config}",
            "attndilute adi --model {model} --data {data} --out {out}"),
    "features": ("subtype features", "subtypes/features.csv", "subtypes",
                 "attndilute subtypes --data {data} --out {out}"),
    "scores": ("cluster scores", "subtypes/scores.csv", "subtypes",
               "attndilute subtypes --data {data} --out {out}"),
    "cka": ("CKA comparisons", "cka/NAME/cka.zarr", "cka/{name}",
            "attndilute cka {model} {model_b} --data {data} --out {out}"),
    "metrics": ("training metrics of {config}", "runs/{config}/metrics.csv", "runs/{config}",
                "attndilute train --data {data} --out {out} --preset PRESET"),
}  # fmt: skip


def missing(run: Run, key: str, *, config: str = "CONFIG", name: str = "NAME", model_b: str = "",
            what: str | None = None) -> Missing:
    """The :class:`Missing` block of input ``key`` (:data:`INPUTS`) in ``run``'s folder.

    Args:
        config: the configuration it belongs to.
        name: the comparison's folder name (CKA).
        model_b: the second model of a CKA command.
        what: a wording other than the table's (e.g. "per-case evaluations" for all of them).
    """
    label, file, out, command = INPUTS[key]

    def path(template: str) -> str:
        return rel_path(run, *template.format(config=config, name=name).split("/"))

    text = command.format(data=path("data"), out=path(out), model=checkpoint_path(run, config),
                          model_b=model_b)
    return Missing(what or label.format(config=config), path(file), text)


def missing_per_config(run: Run, key: str, *, present) -> list[Missing]:
    """A :class:`Missing` for every configuration of ``run`` whose input ``key`` is not in
    ``present`` (one for ``CONFIG`` when the folder names no configuration)."""
    return [missing(run, key, config=c) for c in run.configs or ["CONFIG"] if c not in present]
