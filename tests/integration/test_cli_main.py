import subprocess
import sys

from attndilute.errors import AttnDiluteError


def test_help_and_version(cli):
    code, out, _ = cli("version")
    assert code == 0
    assert out.startswith("attndilute ")
    code, out, _ = cli("--help")
    assert code == 0 and "version" in out


def test_unknown_command_is_usage_error(cli):
    code, _, err = cli("no-such-command")
    assert code == 2


def test_error_message_names_path_and_hint():
    err = AttnDiluteError("not a NIfTI file", path="x/y.nii.gz", hint="re-export it")
    assert str(err) == "x/y.nii.gz: not a NIfTI file (re-export it)"


def test_import_is_light():
    code = (
        "import sys, torch; import attndilute; "
        "names = ('monai', 'zarr', 'xarray', 'matplotlib', 'plotly', 'nibabel'); "
        "heavy = [m for m in names if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_without_the_study_extra_the_command_says_what_to_install():
    code = "import sys; sys.modules['typer'] = None; from attndilute.cli import run; sys.exit(run())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "pip install 'attndilute[study]'" in done.stderr


def test_a_model_family_without_monai_is_a_one_line_error():
    code = (
        "import sys; sys.modules['monai'] = None; from attndilute import models\n"
        "from attndilute.errors import AttnDiluteError\n"
        "try:\n    models.build('smit-tiny')\n"
        "except AttnDiluteError as e:\n    print(e); sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 3 and "attndilute[study]" in done.stdout, done.stdout + done.stderr


def test_version_flag(cli):
    from attndilute import __version__

    code, out, _ = cli("--version")
    assert code == 0 and out.splitlines()[0] == f"attndilute {__version__}"
    assert cli("version")[1] == out


def test_predict_and_evaluate_share_the_split_default():
    import typer

    from attndilute.cli.main import app

    commands = typer.main.get_command(app).commands
    default = {name: next(p.default for p in commands[name].params if p.name == "split")
               for name in ("predict", "evaluate")}  # fmt: skip
    assert default == {"predict": "test", "evaluate": "test"}


def test_compare_keeps_the_given_order():
    import pandas as pd

    from attndilute.evaluation.compare import compare
    from attndilute.evaluation.formatting import tests_cells

    frame = pd.DataFrame({"case": list("abcd"), "sdsc": [0.5, 0.6, 0.7, 0.8], "vr": 1.0,
                          "detected": [True, True, False, True]})  # fmt: skip
    result = compare({"base": frame, "act": frame.assign(detected=True)})
    header, rows = tests_cells(result.tests)
    assert rows[0][0] == "base vs act" and rows[0][4] == "+25.0 pp"
    assert header[4] == "Δ detection (2nd − 1st)"
