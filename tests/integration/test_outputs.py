"""attndilute._io: claimed folders and files, locks, and what the CLI does with a concurrent run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from attndilute import _io
from attndilute.errors import AttnDiluteError


def test_a_new_folder_is_claimed_and_marked_complete(tmp_path):
    out = tmp_path / "o"
    with _io.claim_folder(out, "adi") as claim:
        assert claim.created and not claim.earlier
        assert _io.read_marker(out)["status"] == "running"
        assert (out / _io.LOCK).exists()
        (out / "result.csv").write_text("x\n")
    marker = _io.read_marker(out)
    assert marker["command"] == "adi" and marker["status"] == "complete" and marker["finished"]
    assert not (out / _io.LOCK).exists()
    with _io.claim_folder(out, "adi") as claim:  # the same command again
        assert claim.earlier and not claim.created


def test_a_folder_with_user_files_is_refused_and_overwrite_deletes_nothing(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(AttnDiluteError, match="files it did not write"):
        with _io.claim_folder(out, "adi"):
            pass
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]  # no marker, no lock
    with _io.claim_folder(out, "adi", overwrite=True) as claim:
        (claim.path / "adi.csv").write_text("mine")
    assert (out / "thesis.tex").read_text() == "precious"


def test_another_commands_folder_is_refused(tmp_path):
    out = tmp_path / "o"
    with _io.claim_folder(out, "cka"):
        pass
    with pytest.raises(AttnDiluteError, match="holds an `attndilute cka` run"):
        with _io.claim_folder(out, "adi"):
            pass


def test_a_created_folder_goes_again_when_the_run_fails_before_writing(tmp_path):
    out = tmp_path / "new" / "o"
    with pytest.raises(RuntimeError):
        with _io.claim_folder(out, "adi"):
            raise RuntimeError("bad input found late")
    assert not out.exists()


def test_outputs_inside_an_input_cohort_are_refused(tmp_path):
    nnunet = tmp_path / "ds"
    (nnunet / "labelsTr").mkdir(parents=True)
    (nnunet / "imagesTr").mkdir()
    flat = tmp_path / "flat"
    flat.mkdir()
    for out, cohort in (
        (nnunet / "labelsTr", nnunet),
        (nnunet / "imagesTr" / "x", nnunet),
        (nnunet, nnunet),
        (flat / "preds", flat),
        (flat, flat),
    ):
        with pytest.raises(AttnDiluteError, match="inside the input cohort"):
            _io.refuse_inside(out, cohorts=[cohort])
    _io.refuse_inside(nnunet / "adi", cohorts=[nnunet])  # beside the images: allowed
    with pytest.raises(AttnDiluteError, match="one of this command's inputs"):
        _io.refuse_inside(tmp_path / "a.csv", files=[tmp_path / "." / "a.csv"])


def test_a_second_holder_is_refused_at_once_naming_the_lock_and_pid(tmp_path):
    out = tmp_path / "o"
    with _io.claim_folder(out, "adi"):
        with pytest.raises(AttnDiluteError) as err:
            with _io.claim_folder(out, "adi"):
                pass
    text = str(err.value)
    assert str(out / _io.LOCK) in text and f"PID {os.getpid()}" in text and "attndilute adi" in text


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_note(tmp_path, capsys):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    pid = int(dead.stdout)
    out = tmp_path / "o"
    out.mkdir()
    import socket

    (out / _io.LOCK).write_text(
        json.dumps({"pid": pid, "host": socket.gethostname(), "what": "attndilute adi"})
    )
    (out / _io.MARKER).write_text(json.dumps({"command": "adi", "status": "running"}))
    with _io.claim_folder(out, "adi") as claim:
        assert claim.earlier
    note = capsys.readouterr().err
    assert f"left by PID {pid} (no longer running)" in note


def test_the_lock_holds_across_processes(tmp_path):
    out = tmp_path / "o"
    code = (
        "import sys; from attndilute import _io\n"
        "from attndilute.errors import AttnDiluteError\n"
        "try:\n    with _io.claim_folder(sys.argv[1], 'adi'): pass\n"
        "except AttnDiluteError as e:\n    print(e); sys.exit(3)\n"
    )
    with _io.claim_folder(out, "adi"):
        other = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert other.returncode == 3 and f"PID {os.getpid()}" in other.stdout
    again = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr


def test_claimed_files_are_replaced_only_if_this_command_wrote_them(tmp_path):
    out = tmp_path / "t.csv"

    def write(text, **kw):
        with _io.claim_files([out], "evaluate", **kw):
            with _io.atomic_path(out) as tmp:
                tmp.write_text(text)

    write("one\n")
    write("two\n")  # rerun: the sidecar shows evaluate wrote these bytes
    assert out.read_text() == "two\n"
    out.write_text("edited by hand\n")
    with pytest.raises(AttnDiluteError, match="no earlier `attndilute evaluate` wrote it"):
        write("three\n")
    with pytest.raises(AttnDiluteError, match="no earlier `attndilute compare` wrote it"):
        with _io.claim_files([out], "compare"):
            pass
    write("three\n", overwrite=True)
    assert out.read_text() == "three\n"
    with pytest.raises(AttnDiluteError, match="one of this command's inputs"):
        write("four\n", overwrite=True, files=[out])
    assert not list(tmp_path.glob(".*.lock")) and not list(tmp_path.glob("*.tmp-*"))


def test_cli_one_line_for_os_errors_and_unexpected_errors(cli, monkeypatch, tmp_path):
    import importlib

    compare = importlib.import_module("attndilute.evaluation.compare")

    def boom(*a, **k):
        raise KeyError("internal")

    monkeypatch.setattr(compare, "read_eval_csvs", boom)
    code, _, err = cli("compare", tmp_path / "a.csv", tmp_path / "b.csv")
    assert code == 1 and err.count("\n") == 1 and "--debug" in err and "Traceback" not in err
    code, _, err = cli("compare", tmp_path / "a.csv", tmp_path / "b.csv", "--debug")
    assert code == 1 and "Traceback" in err

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.csv"))

    monkeypatch.setattr(compare, "read_eval_csvs", denied)
    code, _, err = cli("compare", tmp_path / "a.csv", tmp_path / "b.csv")
    assert code == 2 and err.count("\n") == 1 and "x.csv: Permission denied" in err


def test_a_second_adi_on_the_same_out_is_refused_and_the_first_completes(cli, tiny_cohort, tmp_path):
    from attndilute.study.adi import run_adi

    data, ckpt = tiny_cohort
    out = tmp_path / "o"
    second = []

    def progress(done, total):
        if not second:  # while the first run holds the folder
            second.append(cli("adi", "--model", ckpt, "--data", data, "--out", out))

    run = run_adi(str(ckpt), out=out, data=data, batch_size=2, progress=progress)
    code, _, err = second[0]
    assert code == 2 and "another run is writing this output" in err and str(os.getpid()) in err
    assert run.dataset.sizes["scan"] == 4 and _io.read_marker(out)["status"] == "complete"


def test_a_second_cka_or_train_on_the_same_out_is_refused(cli, tiny_cohort, tmp_path):
    data, _ = tiny_cohort
    out = tmp_path / "c"
    with _io.claim_folder(out, "cka"):
        code, _, err = cli(
            "cka", "random:smit-tiny", "init:A", "--data", data, "--out", out, "--crop", "64", "32", "32"
        )
    assert code == 2 and "another run is writing this output" in err
    run = tmp_path / "r"
    with _io.claim_folder(run, "train"):
        code, _, err = cli("train", "--data", data, "--out", run, "--epochs", "1")
    assert code == 2 and "another run is writing this output" in err


def test_a_failed_multi_file_run_can_be_rerun(tmp_path):
    """compare/padstats write two files; a failure after the first must not block the rerun."""
    a, b = tmp_path / "t.csv", tmp_path / "t_tests.csv"
    with pytest.raises(RuntimeError):
        with _io.claim_files([a, b], "compare"):
            with _io.atomic_path(a) as tmp:
                tmp.write_text("table\n")
            raise RuntimeError("the second file failed")
    with _io.claim_files([a, b], "compare"):  # the first file is this command's: no refusal
        for p in (a, b):
            with _io.atomic_path(p) as tmp:
                tmp.write_text("done\n")
    assert a.read_text() == b.read_text() == "done\n"


def test_a_refused_claim_leaves_no_folder_it_created(tmp_path):
    with pytest.raises(AttnDiluteError):
        with _io.claim_files([tmp_path / "new" / "deep" / "e.csv"], "evaluate", files=[tmp_path / "x"]):
            raise AttnDiluteError("bad input found while scoring")
    assert not (tmp_path / "new").exists()
    with pytest.raises(AttnDiluteError):
        with _io.claim_folder(tmp_path / "a" / "b" / "c", "adi"):
            raise AttnDiluteError("bad crop")
    assert not (tmp_path / "a").exists()


def test_a_demo_rerun_removes_only_the_demos_own_entries(tmp_path):
    from attndilute.study.demo import clear_entries

    d = tmp_path / "D"
    for rel in (
        "runs/base/last.ckpt",
        "runs/mine/notes.md",
        "eval/base.csv",
        "eval/mine.csv",
        "data/x.nii.gz",
        "report.html",
        "keep.txt",
    ):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text("x")
    with pytest.raises(AttnDiluteError, match="which the demo writes"):
        clear_entries(d, earlier=False)  # not an earlier demo: nothing is removed
    assert (d / "runs/base/last.ckpt").exists()
    clear_entries(d, earlier=True)
    left = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
    assert left == ["eval/mine.csv", "keep.txt", "runs/mine/notes.md"]


def test_parts_never_reuse_the_name_of_a_committed_part(tmp_path, capsys):
    import xarray as xr

    from attndilute.store.parts import Parts

    def batch(names):
        return xr.Dataset({"v": (("scan",), [float(len(n)) for n in names])}, coords={"scan": names})

    parts = Parts(tmp_path / "p", {"k": 1})
    for names in (["a"], ["bb"], ["ccc"]):
        parts.commit(batch(names))
    (tmp_path / "p" / "00001.npz").write_bytes(b"damaged")
    again = Parts(tmp_path / "p", {"k": 1})
    assert again.scans == ["a", "ccc"] and "unreadable" in capsys.readouterr().err
    path = again.commit(batch(["bb"]))
    assert path.name == "00003.npz"
    assert list(again.combine(["a", "bb", "ccc"])["v"].values) == [1.0, 2.0, 3.0]


def test_cka_store_may_be_the_output_folder(tmp_path, monkeypatch):
    from torch import nn

    monkeypatch.setenv("ATTNDILUTE_CACHE", str(tmp_path / "cache"))
    from attndilute.data import write_phantom
    from attndilute.store import CKAConfig, from_module, run_cka

    write_phantom(tmp_path / "data", n=4, seed=1, profile="small")
    torch_model = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.Conv3d(2, 2, 3, padding=1))
    config = CKAConfig(
        crop=(16, 16, 16), batch_size=4, layers="0,1", pool=(2, 2, 2), store_dir=tmp_path / "o"
    )
    run = run_cka(
        from_module(torch_model),
        from_module(torch_model),
        out=tmp_path / "o",
        data=tmp_path / "data",
        config=config,
    )
    assert run.dataset["cka"].shape == (2, 2)


def test_files_get_the_users_umask_not_the_writers_0600(tmp_path):
    import os
    import stat

    old = os.umask(0o027)
    try:
        with _io.atomic_path(tmp_path / "best.safetensors") as tmp:
            tmp.write_bytes(b"x")
            os.chmod(tmp, 0o600)  # as a writer that goes through tempfile.mkstemp leaves it
        assert stat.S_IMODE((tmp_path / "best.safetensors").stat().st_mode) == 0o640
        os.umask(0o022)
        with _io.atomic_path(tmp_path / "table.csv") as tmp:
            tmp.write_text("a\n")
        assert stat.S_IMODE((tmp_path / "table.csv").stat().st_mode) == 0o644
    finally:
        os.umask(old)
