"""The wheel ships prada's configs (configs/*.yaml and the embedded default) as package data."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from tiny import REPO


@pytest.mark.slow  # builds a wheel with pip (3 s on the 2-core development machine)
def test_the_wheel_ships_every_config_and_an_installed_prada_finds_them_by_name(tmp_path):
    project = tmp_path / "project"  # a copy: the build writes build/ and *.egg-info beside its sources
    project.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO / "configs", project / "configs")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run([*build, "-w", str(tmp_path / "dist"), str(project)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("prada-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))
    assert len(configs) >= 10 and {f"prada/configs/{n}" for n in [*configs, "default.yaml"]} <= names
    assert "prada/lm_eval_tasks/prada_ftcot12.yaml" in names

    site = tmp_path / "site"  # the wheel's files with no checkout around them
    zipfile.ZipFile(wheel).extractall(site)
    code = "from prada.config import config_path; print(config_path('ftcot12-lodo-cpu')); print(config_path('tiny'))"
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    expected = [site / "prada" / "configs" / n for n in ("ftcot12-lodo-cpu.yaml", "tiny.yaml")]
    assert [Path(line) for line in out.stdout.split()] == expected
