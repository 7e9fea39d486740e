"""``attndilute report``: readings from numbers, sections that survive missing inputs, one offline page.

The fixture folder is built with the real commands where they are cheap (phantom, padstats,
subtypes, evaluate on predictions synthesised by perturbing the labels, compare); the trainer's
metrics, ADI stage CSVs and CKA stores are fabricated in the writers' own formats (the CKA
Dataset through ``attndilute.store.cka_dataset`` and its zarr writer).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from attndilute.report.wording import format_p

CONFIGS = ("base", "act")
GAIN = np.array([0.15, 0.35, 0.6, 1.0])  # ADI grows with depth (Fig. 4 A-B)
CROP_Z = {"base": 96, "act": 64}

FRONT_HEADER = (
    "| Configuration | sDSC median [IQR] | VR median [IQR] | Detection [95% CI] | ADI S3 (mean ± sd) |"
)


# --- the fixture folder ---------------------------------------------------------------------


def _predictions(root: Path, pf: dict[str, float]) -> None:
    """Perturbed labels as predictions: base degrades with padding and misses the most padded case."""
    import nibabel as nib
    from scipy import ndimage

    from attndilute.data import discover

    worst = max(pf, key=pf.get)
    for config in CONFIGS:
        (root / "preds" / config).mkdir(parents=True)
    for case in discover(root / "data", require_labels=True):
        img = nib.load(case.label)
        label = np.asarray(img.dataobj) > 0  # (X, Y, Z)
        base = ndimage.binary_erosion(label, iterations=1 + int(pf[case.name] > 0.1))
        base = np.roll(base, 1 + int(pf[case.name] > 0), axis=0)
        if case.name == worst:
            base[:] = False
        act = ndimage.binary_dilation(label, iterations=1) if case.name.endswith(("1", "3", "5")) else label
        for config, mask in (("base", base), ("act", act)):
            out = nib.Nifti1Image(mask.astype(np.uint8), img.affine)
            nib.save(out, root / "preds" / config / f"{case.name}.nii.gz")


def _adi(root: Path, padstats) -> None:
    """adi_stages.csv per configuration: ADI grows with depth and padding; act adds layout padding."""
    import pandas as pd

    rng = np.random.default_rng(0)
    for config in CONFIGS:
        rows = []
        for case, extent in zip(padstats["case"], padstats["extent"], strict=True):
            pf = max(1.0 - extent / CROP_Z[config], 0.0)  # Eq. 4 under the configuration's crop
            layout = np.array([0.004, 0.003, 0.002, 0.0]) if config == "act" else np.zeros(4)
            input_pad = 0.1 * pf * GAIN + np.abs(rng.normal(0, 0.002, 4))
            for stage in range(4):
                rows.append(
                    (case, stage, input_pad[stage] + layout[stage], input_pad[stage], layout[stage], pf)
                )
        (root / "adi" / config).mkdir(parents=True)
        frame = pd.DataFrame(rows, columns=["scan", "stage", "adi", "adi_input_pad", "adi_layout_pad",
                                            "padding_fraction"])  # fmt: skip
        frame.to_csv(root / "adi" / config / "adi_stages.csv", index=False)


def _runs(root: Path) -> None:
    """metrics.csv (validation every 2nd epoch) and a checkpoint header with the crop."""
    import pandas as pd
    from safetensors.numpy import save_file

    for k, config in enumerate(CONFIGS):
        epochs = np.arange(1, 11)
        val = np.where(epochs % 2 == 0, 0.3 + 0.05 * epochs + 0.02 * k, np.nan)
        frame = pd.DataFrame({"epoch": epochs, "lr": 1e-3, "train_loss": 1.2 / np.sqrt(epochs) - 0.01 * k,
                              "val_dice": val, "seconds": 2.0})  # fmt: skip
        (root / "runs" / config).mkdir(parents=True)
        frame.to_csv(root / "runs" / config / "metrics.csv", index=False)
        meta = {
            "family": "smit",
            "preset": "smit-tiny",
            "crop": [64, 64, CROP_Z[config]],
            "epoch": 10,
            "val_dice": 0.8 + 0.02 * k,
        }
        save_file(
            {"w": np.zeros(2, np.float32)},
            str(root / "runs" / config / "best.safetensors"),
            metadata={"attndilute": json.dumps(meta), "format": "pt"},
        )


def _cka(root: Path) -> None:
    """Two comparisons in the real result format; B drifts from A more with depth."""
    import torch

    from attndilute._io import write_zarr
    from attndilute.cka import MinibatchCKA
    from attndilute.store import LayerSpec, cka_dataset

    specs = [LayerSpec(f"layers.{s}.blocks.{b}", "block", s, b) for s in range(4) for b in range(2)]
    gen = torch.Generator().manual_seed(0)
    acts_a = [torch.randn(24, 64, generator=gen) for _ in specs]
    for name, scale in (("base_vs_act", 0.4), ("base_vs_init", 1.0)):
        acts_b = [a + scale * (1 + spec.stage) * torch.randn(a.shape, generator=gen)
                  for a, spec in zip(acts_a, specs, strict=True)]  # fmt: skip
        metric = MinibatchCKA()
        for rows in (slice(0, 12), slice(12, 24)):
            metric.update([a[rows] for a in acts_a], [b[rows] for b in acts_b])
        # paths as ``cka`` records them, one inside a demo's former temporary folder
        model_b = "init:A" if name.endswith("init") else str(root / "runs" / "act" / "best.safetensors")
        model_a = str(root.parent / ".demo-fast.tmp-4242/runs/base/best.safetensors")
        attrs = {"model_a": model_a, "model_b": model_b, "n_scans": 24}
        ds = cka_dataset(metric.compute(), specs, specs, attrs)
        write_zarr(ds, root / "cka" / name / "cka.zarr")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A results folder in the demo layout, built mostly with the real commands."""
    import pandas as pd

    from attndilute.cli.main import main

    root = tmp_path_factory.mktemp("report") / "D"
    root.mkdir()

    def cli(*args):
        assert main([str(a) for a in args]) == 0, args

    cli("phantom", "--out", root / "data", "--n", 12, "--profile", "small")
    cli("padstats", "--data", root / "data", "--crop", 96, 96, 96, "--out", root / "padstats.csv")
    cli("subtypes", "--data", root / "data", "--out", root / "subtypes")
    padstats = pd.read_csv(root / "padstats.csv")
    _predictions(root, dict(zip(padstats["case"], padstats["padding_fraction"], strict=True)))
    _adi(root, padstats)
    data, ev = root / "data", root / "eval"
    cli("evaluate", "--split", "all", "--pred", root / "preds" / "base", "--data", data,
        "--out", ev / "base.csv",
        "--padstats", root / "padstats.csv", "--subtypes", root / "subtypes" / "features.csv",
        "--adi", root / "adi" / "base" / "adi_stages.csv")  # fmt: skip
    cli("evaluate", "--split", "all", "--pred", root / "preds" / "act", "--data", data,
        "--out", ev / "act.csv")
    cli("compare", ev / "base.csv", ev / "act.csv", "--out", ev / "table.csv")
    _runs(root)
    _cka(root)
    return root


@pytest.fixture(scope="module")
def fast_dir(run_dir, tmp_path_factory):
    """The fixture folder cut down to what ``demo --fast`` leaves: 1 epoch per model with validation
    Dice 0.000 / 0.017, 3 evaluated cases and 3 ADI scans per configuration, and its demo.json."""
    import pandas as pd

    root = tmp_path_factory.mktemp("fast") / "D"
    shutil.copytree(run_dir, root, ignore=shutil.ignore_patterns("preds", "table*.csv", ".table*"))
    (root / "demo.json").write_text(json.dumps({"command": "demo", "variant": "fast", "n_cases": 12,
                                                "epochs": {"base": 1, "act": 1}}))  # fmt: skip
    for config, dice in (("base", 0.0), ("act", 0.017)):
        pd.DataFrame({"epoch": [1], "lr": [1e-3], "train_loss": [1.5], "val_dice": [dice], "seconds": [9.0]}
                     ).to_csv(root / "runs" / config / "metrics.csv", index=False)  # fmt: skip
        ev = pd.read_csv(root / "eval" / f"{config}.csv").head(3)
        ev.to_csv(root / "eval" / f"{config}.csv", index=False)
        adi = pd.read_csv(root / "adi" / config / "adi_stages.csv")
        adi[adi["scan"].isin(ev["case"])].to_csv(root / "adi" / config / "adi_stages.csv", index=False)
    return root


@pytest.fixture(scope="module")
def fast_page(fast_dir):
    from attndilute.report import write_report

    result = write_report(fast_dir)
    return result, result.path.read_text(encoding="utf-8")


# --- the page -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(run_dir):
    from attndilute.report import write_report

    result = write_report(run_dir)
    return result, result.path.read_text(encoding="utf-8")


def _readings(html_text: str) -> list[str]:
    import html

    return [html.unescape(t) for t in re.findall(r'<p class="reading">(.*?)</p>', html_text)]


def test_full_report_renders_every_section_offline(page):
    result, text = page
    assert result.path.name == "report.html"
    assert [s[0] for s in result.sections] == ["cohort", "segmentation", "adi", "subtypes", "cka", "training",
                                               "scans"]
    assert {s[2] for s in result.sections} == {"rendered"}, result.sections
    n_figures = sum(s[3] for s in result.sections)
    assert text.count("Plotly.newPlot(") == n_figures >= 12
    # plotly.js once, beside the page, loaded by a relative src: opens offline, no inline bundle
    from attndilute.plotly_js import folder_bundle

    assert re.findall(r'<script[^>]+src="([^"]+)"', text) == ["plotly.min.js"]
    assert not re.search(r"\* plotly\.js v\d", text)
    bundle = (result.path.parent / "plotly.min.js").read_text()
    assert bundle == folder_bundle() and "(cartesian - minified)" in bundle[:200]  # 1.5 MB, not 4.8
    assert not re.search(r"<link[^>]+href=", text)
    assert "Missing:" not in text
    # a comparison with init:A is drift from a random initialisation, and is said not to be Fig. 8
    assert text.count("not Fig. 8") == 1 and "B = random init of base" in text
    assert "A = base, B = act, 24 scans" in text
    assert ".tmp-" not in text and "best.safetensors" not in text.split('id="cka"')[1].split("</section>")[0]
    assert "<td>act</td><td>smit</td><td>smit-tiny</td><td>64×64×64</td><td>10</td><td>0.820</td>" in text
    assert all(r.endswith(".") and r.count(". ") == 0 for r in _readings(text)), _readings(text)


def test_fast_demo_report_has_a_banner_and_no_verdicts(fast_page):
    import html

    _, text = fast_page
    plain = html.unescape(text)
    banner = re.search(r'<div id="banner".*?</div>', plain, re.S).group(0)
    assert "Fast demo (attndilute demo --fast" in banner
    assert "base is untrained (1 epoch, best validation Dice 0.000)" in banner
    assert "act is untrained (1 epoch, best validation Dice 0.017)" in banner
    assert "Small sample: 3 case(s)" in banner
    found = " ".join(_readings(text))
    for verdict in ("highest under", "is the harder subtype", "% lower under", "rises with", "falls with",
                    "plateaued", "stayed flat"):  # fmt: skip
        assert verdict not in found, verdict
    assert "too little to judge convergence" in found
    assert "no reduction is claimed" in found and "no configuration is called better" in found


def test_about_box_cites_the_paper(page):
    from attndilute.report.about import PAPER_ARXIV, PAPER_TITLE

    _, text = page
    assert "What ADI is and how to read this page" in text
    assert PAPER_TITLE in text and PAPER_ARXIV in text and "Rangnekar" in text
    assert 'id="banner"' not in text  # trained models, 12 cases: nothing to warn about


def test_every_figure_has_axis_titles_a_caption_and_a_free_title(run_dir, fast_dir):
    from attndilute.report.load import load_run
    from attndilute.report.sections import Figure, build_sections

    for root in (run_dir, fast_dir):
        for sec in build_sections(load_run(root)):
            for block in (b for b in sec.blocks if isinstance(b, Figure)):
                layout = block.figure.layout
                name = layout.title.text
                assert block.caption, name
                axes = [layout[k] for k in layout if k.startswith(("xaxis", "yaxis"))]
                titled = {k[0] for k in layout if k.startswith(("xaxis", "yaxis")) and layout[k].title.text}
                assert titled == {"x", "y"}, name
                assert layout.modebar.orientation == "v", name  # the toolbar sits beside the title
                for axis in axes:
                    assert ".tmp-" not in str(axis.title.text) and "best" not in str(axis.title.text), name


def test_fast_demo_report_bars_stay_in_the_unit_interval(fast_dir):
    from attndilute.report.load import load_run
    from attndilute.report.sections import Figure, build_sections

    checked = 0
    for sec in build_sections(load_run(fast_dir)):
        for block in (b for b in sec.blocks if isinstance(b, Figure)):
            for trace in block.figure.data:
                err = getattr(trace, "error_y", None)
                if err is None or err.array is None or "ADI" not in str(block.figure.layout.yaxis.title.text):
                    continue
                y = np.asarray(trace.y, dtype=float)
                down = np.asarray(err.arrayminus if err.arrayminus is not None else err.array, dtype=float)
                assert np.all(y - down >= -1e-12) and np.all(y + np.asarray(err.array, float) <= 1 + 1e-12)
                checked += 1
    assert checked >= 2


def test_readings_agree_with_an_independent_computation(run_dir, page):
    import pandas as pd
    from scipy.stats import spearmanr

    _, text = page
    found = _readings(text)
    frames = {c: pd.read_csv(run_dir / "adi" / c / "adi_stages.csv") for c in CONFIGS}
    deep = {c: f[f["stage"] == 3] for c, f in frames.items()}
    base, act = deep["base"]["adi"].mean(), deep["act"]["adi"].mean()
    cut = round(100 * (1 - act / base))
    assert (
        f"Deepest-stage (S3) ADI was {cut}% lower under act ({act:.3f}) than under base ({base:.3f})."
        in found
    )
    rho, p = spearmanr(deep["base"]["padding_fraction"], deep["base"]["adi"])
    assert rho > 0.5
    stats = f"Spearman rho = {rho:.2f}, p = {format_p(p)}, n = 12"
    clause = f"rises with padding fraction under base ({stats})"
    assert any(clause in r for r in found)
    table = pd.read_csv(run_dir / "eval" / "table.csv").set_index("config")
    best = table["sdsc_median"].idxmax()
    assert any(
        r.startswith(f"Median sDSC was highest under {best} ({table.loc[best, 'sdsc_median']:.3f}")
        for r in found
    )
    padded = pd.read_csv(run_dir / "padstats.csv")
    n_padded = int((padded["padding_fraction"] > 0).sum())
    assert any(r.startswith(f"{n_padded} of 12 scans") and "96-voxel axial crop" in r for r in found)


def test_per_scan_table_is_sortable_downloadable_and_matches_the_csvs(run_dir, page):
    import html
    import io
    from urllib.parse import unquote

    import pandas as pd

    _, text = page
    table = re.search(r'<table class="sortable" id="per-scan">.*?</table>', text, re.S).group(0)
    header = [html.unescape(h) for h in re.findall(r'<th scope="col">(.*?)</th>', table)]
    assert header == ["Scan", "Configuration", "Subtype", "Padding fraction", "S0 ADI", "S1 ADI", "S2 ADI",
                      "S3 ADI", "Dice", "sDSC", "Detected"]  # fmt: skip
    assert "table.sortable" in text and "addEventListener('click'" in text
    link = r'<a class="download" download="per_scan.csv" href="data:text/csv;charset=utf-8,([^"]*)"'
    href = re.search(link, text).group(1)
    csv = pd.read_csv(io.StringIO(unquote(href)))
    assert len(csv) == 24 and list(csv["configuration"].unique()) == ["base", "act"]
    # every value against the inputs read independently
    for config in CONFIGS:
        ev = pd.read_csv(run_dir / "eval" / f"{config}.csv").set_index("case")
        adi = pd.read_csv(run_dir / "adi" / config / "adi_stages.csv")
        mine = csv[csv["configuration"] == config].set_index("scan")
        np.testing.assert_allclose(mine.loc[ev.index, "sdsc"], ev["sdsc"], rtol=1e-5)
        np.testing.assert_allclose(mine.loc[ev.index, "dice"], ev["dice"], rtol=1e-5)
        deep = adi[adi["stage"] == 3].set_index("scan")
        np.testing.assert_allclose(mine.loc[deep.index, "S3 ADI"], deep["adi"], rtol=1e-5)
        pf = mine.loc[deep.index, "padding_fraction"]
        np.testing.assert_allclose(pf, deep["padding_fraction"], rtol=1e-5)
    rows = re.findall(r"<tr>(<td>phantom_\d+</td>.*?)</tr>", table)
    assert len(rows) == 24 and all(r.count("<td") == 11 for r in rows)
    assert re.search(r'<td class="num" data-v="[0-9.e-]+">\d\.\d{4}</td>', table)  # raw value for sorting


def test_front_table_matches_compare_and_adi(run_dir):
    import pandas as pd

    from attndilute.evaluation.formatting import median_iqr, rate_interval
    from attndilute.report.load import load_run
    from attndilute.report.summaries import front_markdown

    markdown = front_markdown(load_run(run_dir))
    lines = markdown.splitlines()
    assert lines[0] == FRONT_HEADER
    table = pd.read_csv(run_dir / "eval" / "table.csv")
    for row, line in zip(table.itertuples(), lines[2:], strict=True):
        adi = pd.read_csv(run_dir / "adi" / row.config / "adi_stages.csv").query("stage == 3")["adi"]
        assert line == (
            f"| {row.config} | {median_iqr(row.sdsc_median, row.sdsc_q1, row.sdsc_q3)} | "
            f"{median_iqr(row.vr_median, row.vr_q1, row.vr_q3)} | "
            f"{rate_interval(row.detection_rate, row.detection_low, row.detection_high)} "
            f"({row.n_detected}/{row.n}) | {adi.mean():.3f} ± {adi.std():.3f} |"
        )


def test_empty_folder_names_every_missing_input_and_its_command(tmp_path):
    from attndilute.report import write_report

    result = write_report(tmp_path)
    text = result.path.read_text()
    assert {s[2] for s in result.sections} == {"missing"}
    for command in ("attndilute padstats", "attndilute evaluate", "attndilute adi", "attndilute subtypes",
                    "attndilute cka", "attndilute train"):  # fmt: skip
        assert command in text
    assert "Plotly.newPlot(" not in text and "plotly.js v" not in text  # no figure, no bundle
    assert "<script" not in text.split("<body>")[0] and not (tmp_path / "plotly.min.js").exists()


def test_partial_folder_and_unreadable_input(run_dir, tmp_path):
    from attndilute.report import write_report

    part = tmp_path / "P"
    shutil.copytree(run_dir / "adi", part / "adi")
    (part / "data").mkdir()
    shutil.copy(run_dir / "data" / "phantom.csv", part / "data" / "phantom.csv")  # no padstats
    (part / "adi" / "act" / "adi_stages.csv").write_text("scan,stage\nx,1\n")  # no adi column
    (part / "eval").mkdir()
    (part / "eval" / "base.csv").write_text("")  # empty file
    result = write_report(part, tmp_path / "out" / "r.html")
    status = {s[0]: s[2] for s in result.sections}
    assert status["adi"] == "partial" and status["segmentation"] == "missing"
    assert status["cohort"] == "partial"  # Table 1 and extents from phantom.csv, padstats missing
    text = result.path.read_text()
    assert "The 12 scans have a median native axial extent of" in text
    assert "missing column(s) adi" in text and "not a readable CSV" in text
    assert f"attndilute adi --model {part}/runs/act/best.safetensors" in text


def test_cli_report(cli, run_dir, tmp_path):
    out = tmp_path / "cli.html"
    code, stdout, _ = cli("report", "--run", run_dir, "--out", out)
    assert code == 0 and out.is_file()
    for title in ("Cohort and padding statistics", "Attention dilution", "Training convergence"):
        assert title in stdout
    code, _, err = cli("report", "--run", tmp_path / "absent")
    assert code == 2 and err.startswith("error:") and "does not exist" in err


def test_readme_assets(run_dir, tmp_path, capsys):
    script = Path(__file__).resolve().parents[2] / "examples" / "readme_assets.py"
    spec = importlib.util.spec_from_file_location("readme_assets", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    png = tmp_path / "img" / "readme_adi.png"
    assert module.main(["--run", str(run_dir), "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert FRONT_HEADER in printed


# --- a real headless browser ----------------------------------------------------------------


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome", "chromium-headless-shell",
                 "headless_shell"):  # fmt: skip
        path = shutil.which(name)
        if path:
            return path
    for path in ("/usr/lib/chromium/chromium", "/usr/lib/chromium/headless_shell",
                 "/usr/lib/chromium-headless-shell/chromium-headless-shell"):  # fmt: skip
        if Path(path).is_file():
            return path
    return None


NO_BROWSER = ("no Chromium/Chrome binary on this machine; on Debian: apt-get install chromium-headless-shell "
              "(docs/report.md)")  # fmt: skip


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """Headless Chromium with the network blocked; console messages go to stderr as ``CONSOLE``."""
    return subprocess.run(
        [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--hide-scrollbars",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=15000", *extra, url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _console(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.mark.browser
@pytest.mark.skipif(_browser() is None, reason=NO_BROWSER)
@pytest.mark.parametrize("width", [700, 1400])
def test_fast_demo_report_in_headless_chromium(fast_page, tmp_path, width):
    """The fast-demo-like page at a narrow and a wide window: no console message, every figure
    drawn, and the banner, the per-scan table and the paper's citation on the rendered page.
    Screenshots are kept in the test's tmp folder (``report-<width>.png``)."""
    result, text = fast_page
    url = result.path.as_uri()
    proc = _chromium(url, tmp_path / "profile", f"--window-size={width},1200", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not _console(proc), _console(proc)
    dom = proc.stdout
    assert re.search(r'<div id="banner"[^>]*role="alert"', dom) and "Fast demo" in dom
    assert re.search(r'<table class="sortable" id="per-scan">', dom) and dom.count("<tr><td>phantom_") == 6
    assert "arXiv:2605.05522" in dom and "Tumor-aware augmentation with task-guided attention" in dom
    assert ".tmp-" not in dom
    ids = re.findall(r'<div id="(fig-[a-z]+-\d+)"', text)
    starts = [dom.index(f'id="{i}"') for i in ids] + [len(dom)]
    for fig_id, start, end in zip(ids, starts[:-1], starts[1:], strict=True):
        assert 'class="main-svg"' in dom[start:end], f"{fig_id} was not drawn at {width} px"
    shown = " ".join(re.findall(r'<p class="reading">(.*?)</p>', dom))
    for verdict in ("highest under", "is the harder subtype", "% lower under", "plateaued"):
        assert verdict not in shown, verdict
    shot = tmp_path / f"report-{width}.png"
    proc = _chromium(url, tmp_path / "profile2", f"--window-size={width},4000", f"--screenshot={shot}")
    assert proc.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.browser
@pytest.mark.skipif(_browser() is None, reason=NO_BROWSER)
def test_per_scan_table_sorts_on_a_click_in_chromium(page, tmp_path):
    """The page's own sort script, run by a click on "Padding fraction" (twice: descending)."""
    import html

    result, text = page
    clicked = tmp_path / "clicked.html"
    shutil.copy(result.path.parent / "plotly.min.js", tmp_path / "plotly.min.js")
    click = "<script>var th = document.querySelectorAll('#per-scan th')[3]; th.click(); th.click();</script>"
    clicked.write_text(text.replace("</body>", click + "</body>"), encoding="utf-8")
    proc = _chromium(clicked.as_uri(), tmp_path / "profile", "--dump-dom")
    assert proc.returncode == 0 and not _console(proc), _console(proc)
    table = re.search(r'<table class="sortable" id="per-scan">.*?</table>', proc.stdout, re.S).group(0)
    assert 'aria-sort="descending"' in html.unescape(table)
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])
    pf = [float(re.findall(r'data-v="([^"]*)"', r)[0]) for r in rows]
    assert len(pf) == 24 and pf == sorted(pf, reverse=True) and pf[0] > pf[-1]


@pytest.mark.browser
@pytest.mark.skipif(_browser() is None, reason=NO_BROWSER)
def test_page_renders_in_headless_chromium_without_console_errors(page, tmp_path):
    """Load the page with the network blocked; every figure must draw its SVG, nothing may log.

    Headless Chromium logs every console message (any level) and uncaught exception as a
    ``CONSOLE`` line on stderr; a blocked request would log one too, so none may appear.
    """
    result, text = page
    proc = subprocess.run(
        [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=15000", "--dump-dom",
         result.path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    ids = re.findall(r'<div id="(fig-[a-z]+-\d+)"', text)
    assert len(ids) == text.count("Plotly.newPlot(") > 0
    dom = proc.stdout
    starts = [dom.index(f'id="{i}"') for i in ids] + [len(dom)]
    for fig_id, start, end in zip(ids, starts[:-1], starts[1:], strict=True):
        assert 'class="main-svg"' in dom[start:end], f"{fig_id} was not drawn"
