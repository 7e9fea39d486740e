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
