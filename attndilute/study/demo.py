"""``attndilute demo``: the whole study on the embedded phantom, on a laptop CPU (DESIGN §4).

Steps, in the seed's order: a ``small`` phantom cohort (§2.1), padding statistics (Eq. 4), two
tiny SMIT models — Base (cubic crop) and ACT (anisotropic crop + tumor-aware augmentation, Eq. 1)
— trained on the training split (§2.5), sliding-window prediction and evaluation on the test split
(§2.8, Table 2), ADI of both models on the test cases (§2.4, Fig. 4), appearance subtypes (§2.6,
Fig. 5), CKA between the two models and against their random initialisation (§2.7, Figs. 6, A.2),
and one HTML report. Layout of ``D``::

    D/data  D/padstats.csv  D/runs/{base,act}  D/preds/{base,act}  D/eval/{base,act}.csv
    D/eval/table.csv  D/adi/{base,act}  D/subtypes  D/cka/{base_vs_act,base_vs_init,act_vs_init}
    D/report.html

``D`` is claimed for ``demo`` (:func:`attndilute._io.claim_folder`): locked for the run, and
refused if it holds anything but an earlier demo. A rerun first removes the earlier demo's own
entries (:data:`ENTRIES`) and nothing else. Each step writes its files atomically; the report
comes last, and the folder's marker says ``complete`` only when every step finished.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from attndilute._io import claim_folder, remove, write_json
from attndilute.data import write_phantom
from attndilute.data.padstats import padding_table, write_table
from attndilute.data.subtypes_report import run_subtypes
from attndilute.devices import resolve_device
from attndilute.errors import AttnDiluteError
from attndilute.evaluation.cases import evaluate
from attndilute.evaluation.compare import compare_files
from attndilute.models.checkpoint import save_half
from attndilute.plotly_js import share_plotly_js
from attndilute.report import build_report
from attndilute.resolved import train_settings
from attndilute.store.cka_run import CKAConfig, run_cka
from attndilute.study.adi import run_adi
from attndilute.training import predict, resolve_config, train


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; ``FAST`` is the pipeline check (12 cases, 1 epoch; about 2 min on 2 cores)."""

    n_cases: int = 24
    base_epochs: int | None = None  # None: the training preset's default
    act_epochs: int | None = None
    cka_batch: int = 8
    seed: int = 0
    variant: str = "full"  # recorded in D/demo.json; the report's banner names a fast demo


FULL = DemoConfig()
FAST = DemoConfig(n_cases=12, base_epochs=1, act_epochs=1, cka_batch=4, variant="fast")
CONFIGS = {"base": "tiny", "act": "tiny-act"}
#: What the demo writes into ``D`` (paths relative to it): a rerun replaces these and only these.
ENTRIES = (
    "data", "padstats.csv", "subtypes", "report.html", ".report.html.attndilute.json", "demo.json",
    "plotly.min.js",
    *(f"{kind}/{name}" for kind in ("runs", "preds", "adi") for name in CONFIGS),
    *(f"eval/{stem}" for name in (*CONFIGS, "table", "table_tests")
      for stem in (f"{name}.csv", f".{name}.csv.attndilute.json", f".{name}.csv.lock")),
    *(f"cka/{label}" for label in ("base_vs_act", "base_vs_init", "act_vs_init", "activations")),
)  # fmt: skip


@dataclass
class DemoResult:
    out: Path
    seconds: dict[str, float] = field(default_factory=dict)
    table: object = None  # the comparison table (pandas)
    adi: dict[str, float] = field(default_factory=dict)  # deepest-stage mean ADI per configuration


def run_demo(
    out: str | Path = "demo-out",
    *,
    fast: bool = False,
    config: DemoConfig | None = None,
    log: Callable[[str], None] = print,
    overwrite: bool = False,
    on_start: Callable[[str, int], None] | None = None,
    device: str | None = None,
) -> DemoResult:
    """Run the whole study on a fresh phantom cohort and write ``out/report.html``.

    Args:
        out: the results folder D: new, empty, or an earlier demo's (whose entries are replaced).
        fast: the small variant (12 cases, 1 epoch each).
        config: explicit sizes (overrides ``fast``).
        log: receives one line per finished step.
        on_start: called with a step's name and index (0 .. ``len(STEPS) - 1``) as it starts.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``/None for training, prediction and ADI.
        overwrite: accept a folder that holds other files, as long as none has a name the demo
            writes (:data:`ENTRIES`); those files are left as they are.
    """
    cfg = config or (FAST if fast else FULL)
    device = str(resolve_device(device))  # checked before anything is written
    result = DemoResult(Path(out).expanduser())
    t_all = time.perf_counter()
    with claim_folder(result.out, "demo", overwrite=overwrite) as claim:
        d = claim.path
        clear_entries(d, earlier=claim.earlier)
        write_record(d, cfg)
        demo = _Demo(d, cfg, device, result)
        for index, (name, run) in enumerate(STEP_TABLE):
            if on_start is not None:  # only once the folder is claimed: a refusal stays one line
                on_start(name, index)
            t0 = time.perf_counter()
            run(demo)
            result.seconds[name] = time.perf_counter() - t0
            log(f"{name:<10s} {result.seconds[name]:7.1f} s")
    result.seconds["total"] = time.perf_counter() - t_all
    return result


@dataclass
class _Demo:
    """What the steps share: the claimed folder (written in place), the sizes, the device, the
    validated checkpoints and the result being filled."""

    d: Path
    cfg: DemoConfig
    device: str
    result: DemoResult
    best: dict[str, Path] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.d / "data"


def _phantom(demo: _Demo) -> None:
    write_phantom(demo.data, n=demo.cfg.n_cases, seed=demo.cfg.seed, profile="small")


def _padstats(demo: _Demo) -> None:
    base = resolve_config(CONFIGS["base"])
    write_table(padding_table(demo.data, base.crop, spacing=base.spacing), demo.d / "padstats.csv")


def _subtypes(demo: _Demo) -> None:
    run_subtypes(demo.data, demo.d / "subtypes")


def _train(name: str) -> Callable[[_Demo], None]:
    def run(demo: _Demo) -> None:
        epochs = {"base": demo.cfg.base_epochs, "act": demo.cfg.act_epochs}[name]
        folder = demo.d / "runs" / name
        summary = train(demo.data, folder, CONFIGS[name], epochs=epochs, seed=demo.cfg.seed, progress=False,
                        device=demo.device)  # fmt: skip
        if summary.best is None:
            raise AttnDiluteError(f"training {name} ended without a validated checkpoint", path=folder)
        demo.best[name] = Path(summary.best)
        compact_run(folder, half=demo.cfg.variant == "fast")

    return run


def _predict(name: str) -> Callable[[_Demo], None]:
    def run(demo: _Demo) -> None:
        predict(demo.best[name], demo.data, demo.d / "preds" / name, split="test", progress=False,
                device=demo.device)  # fmt: skip

    return run


def _adi(name: str) -> Callable[[_Demo], None]:
    def run(demo: _Demo) -> None:
        stages = run_adi(str(demo.best[name]), out=demo.d / "adi" / name, data=demo.data, split="test",
                         seed=demo.cfg.seed, device=demo.device).stages  # fmt: skip
        deepest = int(stages["stage"].max())
        demo.result.adi[name] = float(stages.loc[stages["stage"] == deepest, "adi"].mean())

    return run


def _evaluate(demo: _Demo) -> None:
    d = demo.d
    tables = []
    for name in CONFIGS:
        path = d / "eval" / f"{name}.csv"
        evaluate(d / "preds" / name, demo.data, out=path, split="test", padstats=d / "padstats.csv",
                 adi=d / "adi" / name / "adi_stages.csv", subtypes=d / "subtypes" / "features.csv")
        tables.append(path)
    demo.result.table = compare_files(tables, list(CONFIGS), out=d / "eval" / "table.csv").table


def _cka(demo: _Demo) -> None:
    d, best = demo.d, demo.best
    cka_cfg = CKAConfig(batch_size=demo.cfg.cka_batch, seed=demo.cfg.seed,
                        store_dir=d / "cka" / "activations")
    pairs = {"base_vs_act": (best["base"], best["act"]), "base_vs_init": (best["base"], "init:A"),
             "act_vs_init": (best["act"], "init:A")}  # fmt: skip
    for label, (a, b) in pairs.items():
        run_cka(str(a), str(b), out=d / "cka" / label, data=demo.data, config=cka_cfg)
    remove(d / "cka" / "activations")  # a cache for reruns of cka; the demo reruns from scratch


def _report(demo: _Demo) -> None:
    build_report(demo.d, demo.d / "report.html")
    share_plotly_js(demo.d, within=[demo.d / name for name in ENTRIES])  # one plotly.min.js for them


#: The demo's steps in order, as (name, function of the shared :class:`_Demo`); ``on_start`` gets
#: each name as it begins, and the result's ``seconds`` holds each step's time under its name.
STEP_TABLE: tuple[tuple[str, Callable[[_Demo], None]], ...] = (
    ("phantom", _phantom),
    ("padstats", _padstats),
    ("subtypes", _subtypes),
    *((f"train {n}", _train(n)) for n in CONFIGS),
    *((f"predict {n}", _predict(n)) for n in CONFIGS),
    *((f"adi {n}", _adi(n)) for n in CONFIGS),
    ("evaluate", _evaluate),
    ("cka", _cka),
    ("report", _report),
)
STEPS = tuple(name for name, _ in STEP_TABLE)


def settings(device: str | None = None) -> dict:
    """Configuration -> :class:`attndilute.resolved.Resolved` of the demo's two models."""
    import dataclasses


    resolved = {name: train_settings(preset, device=device) for name, preset in CONFIGS.items()}
    # the demo chooses its presets, crops and spacings: only the device can be a silent default
    return {name: dataclasses.replace(r, defaulted=tuple(d for d in r.defaulted if "--device" in d))
            for name, r in resolved.items()}  # fmt: skip


def compact_run(run: Path, *, half: bool) -> None:
    """Keep a demo run folder small: drop ``last.ckpt`` (the resume state, 3x the model: weights
    and Adam moments; the demo never resumes) and, for the fast variant, store ``best.safetensors``
    in float16 (:func:`attndilute.models.checkpoint.save_half`)."""
    remove(run / "last.ckpt")
    if half and (run / "best.safetensors").is_file():
        save_half(run / "best.safetensors")


def write_record(d: Path, cfg: DemoConfig) -> Path:
    """``D/demo.json``: the demo's variant, cases, epochs and seed, read by the report's banner."""
    record = {"command": "demo", "variant": cfg.variant, "n_cases": cfg.n_cases, "seed": cfg.seed,
              "epochs": {"base": cfg.base_epochs, "act": cfg.act_epochs}}
    write_json(d / "demo.json", record)
    return d / "demo.json"


def clear_entries(d: Path, *, earlier: bool) -> None:
    """Remove an earlier demo's entries (and nothing else: a user's ``D/runs/mine`` stays);
    refuse names the demo writes that it did not write."""
    found = [name for name in ENTRIES if (d / name).exists() or (d / name).is_symlink()]
    if found and not earlier:
        raise AttnDiluteError(f"the folder holds {found[0]}, which the demo writes but did not write here",
                              path=d, hint="choose another --out")
    for name in found:
        remove(d / name)
    for folder in ("runs", "preds", "adi", "eval", "cka"):
        with contextlib.suppress(OSError):
            (d / folder).rmdir()  # only if the demo's entries were all it held
