"""Hostile and unlucky users of run folders (issue 15): someone else's run folder, SIGTERM/SIGHUP, two processes on
one folder, stale eval caches, damaged artefacts, silent wrong results, leftovers. Each is a clear error (or the
right result), never a traceback, a silent reuse or a file left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from reliability.harness import cli_error
from tiny import stop_signals_at_default, tiny_config

from prada.errors import PradaError

REPO = Path(__file__).resolve().parents[2]
STEPS = ["train.max_steps=4", "train.save_every=2", "train.save_every_minutes=0", "eval.max_new_tokens=16"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir) -> Path:
    """A trained (4 steps) and evaluated prada run: model/, prompt/, train_done.json, eval.json, .eval_cache/."""
    from prada.evaluation.evaluate import evaluate_run
    from prada.train.loop import train

    run = tmp_path_factory.mktemp("finished") / "run"
    train(tiny_config(data_dir, *STEPS), run, progress=False)
    evaluate_run(run, progress=False)
    return run


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, data_dir) -> Path:
    """A run stopped after its step-2 checkpoint, before its final weights (a kill at that point)."""
    import prada.train.loop as loop

    run = tmp_path_factory.mktemp("interrupted") / "run"
    real, loop.finish = loop.finish, lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt())
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.train(tiny_config(data_dir, *STEPS), run, progress=False)
    finally:
        loop.finish = real
    assert (run / "checkpoint" / "step.json").exists() and not (run / "train_done.json").exists()
    return run


def _copy(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / run.name
    shutil.copytree(run, out)
    return out


def _planned(run_dir: Path):
    from prada.config import load_config
    from prada.experiment import PlannedRun

    cfg = load_config(run_dir / "config.yaml")
    return PlannedRun(cfg.method, "other", cfg.seed, cfg, run_dir)


# --- item 3: trust_remote_code from someone else's config.yaml ----------------------------------------------


@pytest.mark.parametrize("command", ["eval", "explain", "train"])
def test_trust_remote_code_in_a_run_folder_needs_the_users_own_flag(finished, interrupted, tmp_path, capsys, command):
    run = _copy(interrupted if command == "train" else finished, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["student"]["trust_remote_code"] = True
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    argv = ["train", "--resume", str(run)] if command == "train" else [command, "--run", str(run)]
    err = cli_error(*argv, capsys=capsys)
    assert "trust_remote_code" in err and "PRADA_TRUST_REMOTE_CODE=1" in err


def test_trust_remote_code_with_the_users_flag_is_honoured(finished, tmp_path, monkeypatch):
    from prada.run_dir import finished_run_config

    run = _copy(finished, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["student"]["trust_remote_code"] = True
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    monkeypatch.setenv("PRADA_TRUST_REMOTE_CODE", "1")
    assert finished_run_config(run).student.trust_remote_code is True


# --- items 5 and 6: SIGTERM/SIGHUP checkpoint like Ctrl-C; a second process on the folder is refused ---------


def _start_training(run: Path, data_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "prada", "train", "--config", str(REPO / "configs" / "tiny.yaml")]
    argv += [f"data.data_dir={data_dir}", "train.max_steps=100000", "train.save_every=0", "--out", str(run)]
    # output to a file, not a pipe: nobody reads a pipe while the test waits, and a full one blocks the child
    out = open(run.parent / f"{run.name}.out", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, text=True, preexec_fn=stop_signals_at_default
    )


def _wait_for_log(proc: subprocess.Popen, run: Path, lines: int = 2, timeout: float = 120) -> None:
    t0 = time.monotonic()
    log = run / "train_log.jsonl"
    while not (log.exists() and len(log.read_text().splitlines()) >= lines):
        assert proc.poll() is None, (run.parent / f"{run.name}.out").read_text()
        assert time.monotonic() - t0 < timeout, "training never logged"
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_checkpoint_like_ctrl_c_and_a_second_process_is_refused(data_dir, tmp_path, capsys, sig):
    run = tmp_path / "run"
    proc = _start_training(run, data_dir)
    try:
        _wait_for_log(proc, run)
        if sig == signal.SIGTERM:  # item 6: while it trains, a second train/resume/run on the folder is refused
            err = cli_error("train", "--resume", str(run), capsys=capsys)
            assert "another prada process" in err
            logged = len((run / "train_log.jsonl").read_text().splitlines())
        t0 = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=60)
        stopped = time.monotonic() - t0
        stderr = (tmp_path / "run.out").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"\n{sig.name}: exit {proc.returncode} after {stopped:.2f} s", file=sys.__stderr__)
    assert proc.returncode == 128 + sig, stderr
    assert f"prada train --resume {run}" in stderr and "Traceback" not in stderr
    step = json.loads((run / "checkpoint" / "step.json").read_text())["step"]
    steps = [json.loads(x)["step"] for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, step + 1))  # one line per step: no second writer interleaved
    if sig == signal.SIGTERM:
        assert len(steps) >= logged


def test_a_second_prada_run_on_the_same_experiment_is_refused(tmp_path, capsys):
    from prada.io import folder_lock

    root = tmp_path / "out" / "tiny-run"
    with folder_lock(root, "test"):
        err = cli_error(
            "run", "--config", str(REPO / "configs" / "tiny-run.yaml"), f"out_dir={tmp_path / 'out'}", capsys=capsys
        )
    assert "another prada process" in err


@pytest.mark.parametrize("command", ["eval", "explain"])
def test_a_second_prada_eval_or_explain_on_the_same_run_is_refused(finished, tmp_path, capsys, command):
    import fcntl

    run = _copy(finished, tmp_path)
    fd = os.open(run, os.O_RDONLY)  # what a running `prada eval`, `prada explain` or `prada train` holds
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert "another prada process" in cli_error(command, "--run", str(run), capsys=capsys)
    finally:
        os.close(fd)


# --- item 7: the eval cache follows the prompt and the weights -------------------------------------------------


def _cache_lines(run: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in (run / ".eval_cache").glob("*.jsonl"))


def test_eval_cache_is_keyed_by_the_prompt_and_the_weights(finished, tmp_path):
    from prada.evaluation.evaluate import evaluate_run

    run = _copy(finished, tmp_path)
    shutil.rmtree(run / ".eval_cache")
    test = tmp_path / "mine.jsonl"
    rows = [
        {"question": f"What is {i} + 1?", "answer": str(i + 1), "answer_type": "number", "id": f"q{i}"}
        for i in range(4)
    ]
    test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    evaluate_run(run, data=str(test), out=str(tmp_path / "e.json"), progress=False)
    assert _cache_lines(run) == 4
    # same ids, other questions and answers: each is asked again, never scored from the old outputs
    rows = [{**r, "question": f"What is {i} + 7?", "answer": str(i + 7)} for i, r in enumerate(rows)]
    test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    evaluate_run(run, data=str(test), out=str(tmp_path / "e.json"), progress=False)
    assert _cache_lines(run) == 8
    preds = [json.loads(x) for x in (tmp_path / "e.predictions.jsonl").read_text().splitlines()]
    assert [p["question"] for p in preds] == [r["question"] for r in rows]
    # other weights (rewritten files), other cache: everything is generated again
    for f in (run / "model").glob("*.safetensors"):
        f.write_bytes(f.read_bytes())
    evaluate_run(run, data=str(test), out=str(tmp_path / "e.json"), progress=False)
    assert _cache_lines(run) == 12


# --- item 9: damaged artefacts of prada's own name the file and what to do -----------------------------------


def _flip(path: Path, at: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda r: _flip(r / "checkpoint" / "trainable.safetensors"), "trainable.safetensors does not match"),
        (lambda r: (r / "checkpoint" / "trainable.safetensors").write_bytes(b"\x00" * 64), "does not match"),
        (lambda r: (r / "checkpoint" / "step.json").write_text("{not json"), "step.json unreadable"),
        (lambda r: (r / "checkpoint" / "step.json").write_text('{"step": 999}'), "outside this run's 4 steps"),
        (
            lambda r: (r / "checkpoint" / "step.json").write_text(
                json.dumps({**json.loads((r / "checkpoint" / "step.json").read_text()), "step": 999})
            ),
            "does not match its digest",
        ),
        (lambda r: _flip(r / "checkpoint" / "state.pt"), "state.pt does not match"),
    ],
    ids=["flipped-weights", "zeroed-weights", "bad-step-json", "step-999-unsigned", "step-999", "flipped-state"],
)
def test_a_damaged_checkpoint_is_refused_naming_it(interrupted, tmp_path, capsys, damage, words):
    run = _copy(interrupted, tmp_path)
    damage(run)
    err = cli_error("train", "--resume", str(run), capsys=capsys)
    assert words in err and str(run / "checkpoint") in err and "delete" in err
    assert not (run / "train_done.json").exists()


def test_a_nan_checkpoint_with_valid_checksums_is_refused(interrupted, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file, save_file

    from prada.io import sha256_file
    from prada.train import checkpoint as ck

    run = _copy(interrupted, tmp_path)
    folder = run / "checkpoint"
    weights = load_file(str(folder / "trainable.safetensors"))
    name = next(iter(weights))
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(folder / "trainable.safetensors"))
    files = {n: sha256_file(folder / n) for n in ("trainable.safetensors", "state.pt")}
    (folder / "step.json").write_text(json.dumps({"step": 2, "sha256": files, "digest": ck._digest(2, files)}))
    assert "NaN" in cli_error("train", "--resume", str(run), capsys=capsys)


@pytest.mark.parametrize("part", ["model", "prompt"])
def test_damaged_final_weights_are_one_error_naming_the_file(finished, tmp_path, capsys, part):
    run = _copy(finished, tmp_path)
    weights = next((run / part).glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:200])
    (run / "eval.json").unlink()
    err = cli_error("eval", "--run", str(run), capsys=capsys)
    assert f"{run}/{part}/" in err and "delete" in err


@pytest.mark.parametrize(
    "name, content",
    [
        ("eval.json", "{torn"),
        ("eval.json", "[1, 2]"),
        ("train_done.json", "\x00\x01"),
        ("explain/explain.json", "{"),
        ("config.yaml", "student: [unclosed"),
        ("config.yaml", "- a list\n"),
    ],
)
def test_prada_run_names_a_damaged_artefact_of_a_finished_run(finished, tmp_path, name, content):
    from prada.experiment import execute_run

    run = _copy(finished, tmp_path)
    planned = _planned(run)
    (run / name).parent.mkdir(exist_ok=True)
    (run / name).write_text(content)
    with pytest.raises(PradaError) as ei:
        execute_run(planned, 0, False, lambda _s: None)
    assert name.split("/")[-1] in str(ei.value) and ("delete" in str(ei.value) or "rerun" in str(ei.value))


def test_a_damaged_config_yaml_is_one_error_line_for_eval(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path)
    (run / "config.yaml").write_bytes(b"\xff\xfe garbage")
    assert "config.yaml" in cli_error("eval", "--run", str(run), capsys=capsys)


def test_damaged_train_log_lines_do_not_stop_a_resume(interrupted, tmp_path):
    from prada.train.loop import train

    run = _copy(interrupted, tmp_path)
    with open(run / "train_log.jsonl", "a") as f:
        f.write('[1, 2]\n"text"\n{"step": "x"}\n' + "9" * 5000 + "\n")
    train(resume=run, progress=False)
    steps = [json.loads(x)["step"] for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_damaged_eval_cache_lines_are_redone_not_a_traceback(finished, tmp_path):
    from prada.evaluation.evaluate import evaluate_run

    run = _copy(finished, tmp_path)
    (cache,) = (run / ".eval_cache").glob("*.jsonl")
    n = len(cache.read_text().splitlines())
    with open(cache, "a") as f:
        f.write('{"dataset": 1}\n[1]\n"x"\n{"dataset": "a", "id": "b"}\n' + "9" * 5000 + "\n")
    before = json.loads((run / "eval.json").read_text())
    (run / "eval.json").unlink()
    after, _ = evaluate_run(run, progress=False)
    assert after["datasets"].keys() == before["datasets"].keys()
    assert len(cache.read_text().splitlines()) == n + 5  # nothing redone: the good lines all still count


# --- item 10: silent wrong results -----------------------------------------------------------------------------


def test_prada_run_refuses_a_finished_run_whose_data_changed(finished, data_dir, tmp_path):
    from prada.experiment import execute_run

    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    run = _copy(finished, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["data"]["data_dir"] = str(data)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    execute_run(_planned(run), None, False, lambda _s: None)  # same data: reused
    test = next(data.glob("*/test.jsonl"))
    lines = test.read_text().splitlines()
    first = json.loads(lines[0])
    first["question"] = first["question"] + " (edited)"  # still a valid example: other data, not bad data
    test.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    with pytest.raises(PradaError, match="other data"):
        execute_run(_planned(run), None, False, lambda _s: None)


def test_a_diverging_run_stops_with_a_clear_error_and_no_nan_in_the_log(data_dir, tmp_path):
    from prada.train.loop import train

    run = tmp_path / "run"
    with pytest.raises(PradaError, match="diverged"):
        train(tiny_config(data_dir, *STEPS, "train.lr=1e30", "train.max_grad_norm=0"), run, progress=False)
    assert not (run / "train_done.json").exists()
    assert "NaN" not in (run / "train_log.jsonl").read_text() if (run / "train_log.jsonl").exists() else True


def test_a_max_length_that_leaves_no_target_token_is_a_clear_error(data_dir, tmp_path):
    from prada.train.loop import train

    with pytest.raises(PradaError, match="student.max_length"):
        train(tiny_config(data_dir, *STEPS, "student.max_length=1"), tmp_path / "run", progress=False)


# --- item 11: a 200 kB question ----------------------------------------------------------------------------------


def test_a_200_kb_question_is_cut_like_in_training_and_counted(finished, tmp_path):
    from prada.evaluation.evaluate import evaluate_run

    run = _copy(finished, tmp_path)
    test = tmp_path / "long.jsonl"
    rows = [
        {"question": "What is 1 + 1? " + "very " * 40_000, "answer": "2", "answer_type": "number", "id": "long"},
        {"question": "What is 2 + 2?", "answer": "4", "answer_type": "number", "id": "short"},
    ]
    test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t0 = time.monotonic()
    result, _ = evaluate_run(run, data=str(test), progress=False)
    elapsed = time.monotonic() - t0
    print(f"\n200 kB question: prada eval {elapsed:.1f} s", file=sys.__stderr__)
    assert result["datasets"]["custom"]["prompt_truncated"] == 1
    assert elapsed < 60


# --- item 13: leftovers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["train", "run"])
def test_checkpoints_left_by_a_kill_after_train_done_are_removed(finished, tmp_path, via):
    from prada.experiment import execute_run
    from prada.train.loop import train

    run = _copy(finished, tmp_path)
    for name in ("checkpoint", ".checkpoint.old"):
        (run / name).mkdir()
        (run / name / "trainable.safetensors").write_bytes(b"\x00" * 1024)
    if via == "train":
        train(resume=run, progress=False)
    else:
        execute_run(_planned(run), None, False, lambda _s: None)
    assert not (run / "checkpoint").exists() and not (run / ".checkpoint.old").exists()


def test_a_killed_model_conversion_leaves_nothing_behind(tmp_path):
    from prada.model_aliases import _ensure

    stale = tmp_path / ".model.abc123"  # what a kill -9 during a conversion leaves
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\x00" * 4096)

    def build(out: Path) -> None:
        (out / "config.json").write_text("{}")

    assert (_ensure(tmp_path / "model", build) / "config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_data_synth_never_overwrites_a_users_summary_json(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "summary.json").write_text('{"my": "notes"}')
    err = cli_error("data", "synth", "--out", str(out), "--n-train", "4", "--n-test", "2", capsys=capsys)
    assert "summary.json" in err
    assert (out / "summary.json").read_text() == '{"my": "notes"}' and sorted(p.name for p in out.iterdir()) == [
        "summary.json"
    ]


def test_a_torn_eval_cache_line_is_redone_once_and_never_glued(finished, tmp_path):
    from prada.evaluation.evaluate import evaluate_run

    run = _copy(finished, tmp_path)
    (cache,) = (run / ".eval_cache").glob("*.jsonl")
    raw = cache.read_bytes()
    n = raw.count(b"\n")
    cache.write_bytes(raw[:-20])  # a kill mid-append: the last line loses its end
    (run / "eval.json").unlink()
    evaluate_run(run, progress=False)
    (run / "eval.json").unlink()
    evaluate_run(run, progress=False)  # the redone item is cached now: nothing more is appended
    lines = cache.read_text().splitlines()
    assert len(lines) == n + 1  # n - 1 intact + the torn fragment + the redone item
    assert sum(1 for x in lines if x.endswith("}")) == n
