"""scripts/study.sh commits every finished run's small outputs, and stops loudly when git would ignore one."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_PRADA = """#!/usr/bin/env bash
# stands in for prada: `run` finishes one zero-shot run, `report` writes a report
if [ "$1" = run ]; then
  d=runs/s2/runs/zero-shot__f__seed0; mkdir -p "$d"
  echo 'method: zero-shot' > "$d/config.yaml"; echo '{"steps": 0}' > "$d/train_done.json"
  echo '{"method": "zero-shot"}' > "$d/eval.json"; echo '{"id": "1", "correct": true}' > "$d/predictions.jsonl"
fi
[ "$1" = report ] && echo report > "$2/report.md"
exit 0
"""


@pytest.fixture
def repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    (tmp_path / "scripts").mkdir()
    for script in ("study.sh", "commit_results.sh"):
        shutil.copy(ROOT / "scripts" / script, tmp_path / "scripts" / script)
    (tmp_path / "study.yaml").write_text("name: s2\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "prada").write_text(FAKE_PRADA)
    (bin_dir / "prada").chmod(0o755)
    # a wrapper, not a symlink: a symlinked venv interpreter outside its venv loses the venv's packages
    (bin_dir / "python").write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    env = {
        **os.environ,
        "PRADA_BIN": str(bin_dir),
        "STUDY_POLL_SECONDS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path, env


def _drive(repo, env):
    return subprocess.run(
        ["bash", "scripts/study.sh", "study.yaml", "results/s2"], cwd=repo, env=env, capture_output=True, text=True
    )


def test_driver_commits_predictions_and_logs(repo):
    path, env = repo
    (path / ".gitignore").write_text("/runs/\n")  # the fixed rule: only the top-level runs/ (weights)
    out = _drive(path, env)
    assert out.returncode == 0, out.stderr
    committed = subprocess.run(["git", "ls-files"], cwd=path, capture_output=True, text=True).stdout.split()
    assert "results/s2/runs/zero-shot__f__seed0/predictions.jsonl" in committed
    assert "results/s2/runs/zero-shot__f__seed0/eval.json" in committed


def test_driver_stops_loudly_when_git_would_ignore_a_result(repo):
    path, env = repo
    (path / ".gitignore").write_text("runs/\n")  # the old rule: it also matches results/s2/runs/
    out = _drive(path, env)
    assert out.returncode == 3
    assert "ignored by git and would not be committed" in out.stderr, out.stderr
    assert "results/s2/runs/" in out.stderr
    log = subprocess.run(["git", "log", "--oneline"], cwd=path, capture_output=True, text=True).stdout
    assert log == ""  # nothing half-committed


def test_a_run_finished_in_this_session_records_its_machine_and_a_restored_one_does_not(repo):
    path, env = repo
    (path / ".gitignore").write_text("/runs/\n")
    restored = path / "results/s2/runs/prior__f__seed0"  # finished in an earlier session, on another machine
    restored.mkdir(parents=True)
    (restored / "config.yaml").write_text("method: prior\n")
    (restored / "eval.json").write_text('{"method": "prior"}\n')
    out = _drive(path, env)
    assert out.returncode == 0, out.stderr
    assert "restored prior__f__seed0" in out.stdout
    machine = json.loads((path / "results/s2/runs/zero-shot__f__seed0/machine.json").read_text())
    assert machine["cores"] == os.cpu_count() and machine["cpu"] and isinstance(machine["speed_flags"], list)
    committed = subprocess.run(["git", "ls-files"], cwd=path, capture_output=True, text=True).stdout.split()
    assert "results/s2/runs/zero-shot__f__seed0/machine.json" in committed
    assert not (restored / "machine.json").exists()


def test_the_after_run_hook_runs_once_per_run_finished_here_and_a_failing_one_is_not_fatal(repo):
    path, env = repo
    (path / ".gitignore").write_text("/runs/\nhook.log\n")
    out = _drive(path, {**env, "STUDY_AFTER_RUN": "echo ran >> hook.log; exit 7"})
    assert out.returncode == 0, out.stderr
    assert (path / "hook.log").read_text() == "ran\n"  # one finished run: once, though collect ran every second
    assert "STUDY_AFTER_RUN failed (exit 7)" in out.stderr
    committed = subprocess.run(["git", "ls-files"], cwd=path, capture_output=True, text=True).stdout.split()
    assert "results/s2/runs/zero-shot__f__seed0/eval.json" in committed


def test_editing_the_script_while_a_study_runs_does_not_change_the_running_copy(repo):
    """bash reads a script as it goes; a study runs for hours, and an edit saved meanwhile once could have made
    the running copy read new bytes at its old offset. The script is one block, read whole before it starts."""
    path, env = repo
    (path / ".gitignore").write_text("/runs/\n")
    slow = (path / "bin" / "prada").read_text().replace('if [ "$1" = run ]; then', 'if [ "$1" = run ]; then sleep 3')
    (path / "bin" / "prada").write_text(slow)
    proc = subprocess.Popen(
        ["bash", "scripts/study.sh", "study.yaml", "results/s2"],
        cwd=path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # `prada run` is sleeping, the driver is in its loop
    script = path / "scripts" / "study.sh"
    size = script.stat().st_size
    with open(script, "r+") as f:  # in place, as an editor that rewrites the file does
        f.write("echo CLOBBERED >&2; exit 9\n" * (2 * size // 27 + 1))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "CLOBBERED" not in err and "command not found" not in err
    committed = subprocess.run(["git", "ls-files"], cwd=path, capture_output=True, text=True).stdout.split()
    assert "results/s2/runs/zero-shot__f__seed0/eval.json" in committed


def test_no_report_is_attempted_before_any_run_has_been_evaluated(repo):
    """A study's first poll sees only experiment.yaml: `prada report` would fail on it, and say so for nothing."""
    path, env = repo
    (path / ".gitignore").write_text("/runs/\n")
    slow_start = FAKE_PRADA.replace(
        'if [ "$1" = run ]; then',
        'if [ "$1" = run ]; then\n  mkdir -p runs/s2; echo "name: s2" > runs/s2/experiment.yaml; sleep 3',
    ).replace(
        '[ "$1" = report ] && echo',
        '[ "$1" = report ] && ! ls "$2"/runs/*/eval.json >/dev/null 2>&1 && exit 1\n[ "$1" = report ] && echo',
    )
    (path / "bin" / "prada").write_text(slow_start)
    out = _drive(path, env)
    assert out.returncode == 0, out.stderr
    assert "report failed" not in out.stdout, out.stdout
    assert (path / "results/s2/report.md").read_text() == "report\n"
    log = subprocess.run(["git", "log", "--format=%s"], cwd=path, capture_output=True, text=True).stdout
    assert "0 runs finished" in log and "1 runs finished" in log  # experiment.yaml is still committed at once


def test_with_explain_off_a_trained_run_is_committed_once_evaluated(repo):
    """The oracle's config says `explain: false`: waiting for an explain.json that never comes lost its runs."""
    path, env = repo
    (path / ".gitignore").write_text("/runs/\n")
    (path / "study.yaml").write_text("name: s2\nexplain: false\n")
    trained = FAKE_PRADA.replace("zero-shot__f__seed0", "ft-cot__f__seed0").replace(
        "method: zero-shot", "method: ft-cot"
    )
    (path / "bin" / "prada").write_text(trained)
    out = _drive(path, env)
    assert out.returncode == 0, out.stderr
    committed = subprocess.run(["git", "ls-files"], cwd=path, capture_output=True, text=True).stdout.split()
    assert "results/s2/runs/ft-cot__f__seed0/predictions.jsonl" in committed
    (path / "study.yaml").write_text("name: s2\n")  # explain on (the default): not finished without explain.json
    shutil.rmtree(path / "results")
    shutil.rmtree(path / "runs")
    out = _drive(path, env)
    assert out.returncode == 0, out.stderr
    assert not (path / "results/s2/runs/ft-cot__f__seed0").exists()
