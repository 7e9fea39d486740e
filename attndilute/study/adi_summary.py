"""Cohort summaries of ``adi_stages.csv`` (a pandas frame, one row per scan and stage): what the
``adi`` command prints and its figures draw (seed Fig. 4 A-D)."""

from __future__ import annotations

from attndilute.stats import spearman


def stage_summary(stages) -> object:
    """Mean, sd and n of stage ADI over scans (seed Fig. 4 A-D)."""
    grouped = stages.groupby("stage")
    out = grouped[["adi", "adi_input_pad", "adi_layout_pad"]].mean().add_prefix("mean_")
    out["sd_adi"] = grouped["adi"].std(ddof=1)
    out["n"] = grouped["adi"].count()
    return out.reset_index()


def layout_padding_note(summary) -> str:
    """Which stage columns hold layout padding (tokens the model adds to fill its windows).

    Layout padding is not the input's padding: the Swin UNETR window artifact (seed §3.2.1) puts
    ADI into stages whose grid is no multiple of the window, even with no padded slice at all.
    """
    rows = [f"S{int(r.stage)}" for r in summary.itertuples() if r.mean_adi_layout_pad > 0]
    if not rows:
        return "no stage has layout padding: every ADI column is input padding"
    return (f"{', '.join(rows)} include layout padding (tokens the model adds to fill its windows, "
            "column 'layout pad'; docs/adi.md, the window artifact)")


def deepest_spearman(stages) -> tuple[int, float, float]:
    """Spearman rho and p of the deepest stage's ADI versus padding fraction, over scans."""
    deepest = int(stages["stage"].max())
    d = stages[stages["stage"] == deepest]
    result = spearman(d["padding_fraction"].to_numpy(), d["adi"].to_numpy())
    return deepest, float(result.rho), float(result.p)
