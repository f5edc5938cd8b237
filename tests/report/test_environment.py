"""The report names what its numbers were measured with: versions, the source commit and the wall time."""

import os
import re
import subprocess

import torch
import transformers

from prada import __version__
from prada.report.environment import describe, environment, source_commit


def test_environment_names_versions_commit_and_wall_time(tmp_path):
    runs = []
    for i, (start, end) in enumerate([(1000, 1500), (1600, 4725)]):
        run = tmp_path / f"r{i}"
        run.mkdir()
        (run / "config.yaml").write_text("x: 1\n")
        (run / "eval.json").write_text("{}\n")
        os.utime(run / "config.yaml", (start, start))
        os.utime(run / "eval.json", (end, end))
        runs.append(run)
    env = environment(runs)
    assert env["wall_time_s"] == 3725.0  # first config.yaml to last eval.json
    assert env["prada"] == __version__ and env["torch"] == torch.__version__
    assert env["transformers"] == transformers.__version__
    line = describe(env)
    assert line.startswith(f"Environment: prada {__version__} (commit ") and "Wall time 1:02:05" in line
    assert f"transformers {transformers.__version__}" in line


def test_the_commit_is_this_checkouts():
    commit = source_commit()
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=os.path.dirname(__file__))
    if head.returncode != 0:
        assert commit is None
    else:
        assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", commit) and commit.startswith(head.stdout.strip())
