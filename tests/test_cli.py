"""Every subcommand answers --help; library errors become one clear line and exit code 2."""

import subprocess
import sys

import pytest

from prada.cli import COMMANDS, main


@pytest.mark.parametrize("name", [c[0] for c in COMMANDS])
def test_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([*name.split(), "--help"])
    assert e.value.code == 0
    assert "usage: prada" in capsys.readouterr().out


def test_bad_override_is_one_line_error(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "prada",
            "train",
            "--config",
            "configs/tiny.yaml",
            "adversary.lambda_mx=1",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "adversary.lambda_mx: unknown key" in r.stderr and "Traceback" not in r.stderr
