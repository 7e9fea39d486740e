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
