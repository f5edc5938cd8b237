"""train.keep_best and train.early_stopping_patience: the student at its lowest held-out source CoT loss, early
stopping, and both across a resume (train/selection.py)."""

import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from safetensors.torch import load_file
from tiny import tiny_config

from prada.config import load_config
from prada.train.loop import TrainingInterrupted, train
from prada.train.selection import METRIC, EarlyStopping, Selection


def _weights(run: Path) -> dict:
    files = sorted(p for p in run.glob("model/*.safetensors"))
    return {f"{f.name}:{k}": v for f in files for k, v in load_file(str(f)).items()}


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def test_early_stopping_counts_evaluations_since_the_lowest_loss():
    state = EarlyStopping(patience=2)
    seen = [(2, 3.0), (4, 2.5), (6, 2.6), (8, 2.4), (10, 2.4), (12, float("nan")), (14, 2.5)]
    improved = [state.update(step, value) for step, value in seen[:5]]
    assert improved == [True, True, False, True, False] and not state.stop  # an equal loss is no improvement
    assert not state.update(*seen[5]) and state.stop  # NaN is no improvement either
    assert (state.best, state.best_step, state.since_best) == (2.4, 8, 2)
    rows = [{"step": s, METRIC: v} for s, v in seen[:6]] + [{"step": 13, "lm_loss": 1.0}, {"step": "x", METRIC: 0.1}]
    assert EarlyStopping.replay(list(reversed(rows)), 2) == state  # the log's lines, in any order; others skipped
    assert not EarlyStopping(patience=0, since_best=99).stop  # 0: never stops


def _scripted(values: list[float], interrupt_at: int | None = None):
    """A stand-in for the held-out figures: the n-th evaluation's source CoT loss is values[n - 1]; at evaluation
    `interrupt_at` a Ctrl-C arrives (the loop finishes the step, writes a checkpoint and stops)."""
    calls = []

    def heldout_figures(student, held, device, seed=0):
        calls.append(1)
        if len(calls) == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        return {METRIC: values[len(calls) - 1]}

    return heldout_figures


SELECT = ["method=ft-cot", "train.max_steps=12", "train.eval_every=2", "train.keep_best=true"]
LOSSES = [3.0, 2.0, 2.5, 2.6, 2.7, 2.8]  # evaluations at steps 2, 4, 6, 8, 10, 12: lowest at step 4


def test_keep_best_saves_the_student_at_the_lowest_loss_and_early_stopping_finishes_the_run(synth_dir, tmp_path):
    cfg = tiny_config(synth_dir, *SELECT, "train.early_stopping_patience=3", "train.snapshot_steps=[4,10]")
    with mock.patch("prada.train.loop.heldout_figures", _scripted(LOSSES)):
        run = train(cfg, tmp_path / "r", progress=False)
    done = json.loads((run / "train_done.json").read_text())
    # evaluations 6, 8 and 10 bring no new lowest loss: the run stops at step 10 of 12 and finishes normally
    assert (done["steps"], done["planned_steps"], done["stopped_early_at"]) == (10, 12, 10)
    assert done["best"] == {"step": 4, METRIC: 2.0, "folder": "best"}
    assert [r["step"] for r in _log(run)] == list(range(1, 11))
    assert not (run / "checkpoint").exists() and not list(run.glob(".best*"))
    best = json.loads((run / "best" / "train_done.json").read_text())
    assert (best["steps"], best[METRIC], best["selected_on"]) == (4, 2.0, METRIC)
    # best/ holds the student of step 4 (the snapshot taken then), not the final one (step 10)
    at_4, final, kept = _weights(run / "snapshots" / "step-4"), _weights(run), _weights(run / "best")
    assert kept.keys() == at_4.keys() == final.keys() and kept
    assert all((kept[k] == at_4[k]).all() for k in kept)
    assert any((kept[k] != final[k]).any() for k in kept)
    assert all((final[k] == _weights(run / "snapshots" / "step-10")[k]).all() for k in final)


def test_the_best_and_the_patience_survive_a_resume(synth_dir, tmp_path):
    """Ctrl-C at step 6 (after the best, at 4), then resume: the best so far comes back from train_log.jsonl, so
    step 8 is not taken for a new best and the run stops at 10, exactly like the uninterrupted run."""
    cfg = tiny_config(synth_dir, *SELECT, "train.early_stopping_patience=3", "train.save_every=0")
    with mock.patch("prada.train.loop.heldout_figures", _scripted(LOSSES)):
        full = train(cfg, tmp_path / "full", progress=False)
    fake = _scripted(LOSSES, interrupt_at=3)
    # Ctrl-C at Python's own handler, whatever this test process inherited (prada keeps an inherited ignore)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with mock.patch("prada.train.loop.heldout_figures", fake), pytest.raises(TrainingInterrupted):
            train(cfg, tmp_path / "cut", progress=False)
    finally:
        signal.signal(signal.SIGINT, inherited)
    with mock.patch("prada.train.loop.heldout_figures", fake):
        cut = tmp_path / "cut"
        assert json.loads((cut / "checkpoint" / "step.json").read_text())["step"] == 6
        assert json.loads((cut / "best" / "train_done.json").read_text())["steps"] == 4
        train(resume=cut, progress=False)
    a, b = (json.loads((r / "train_done.json").read_text()) for r in (full, cut))
    assert (b["stopped_early_at"], b["best"]["step"]) == (a["stopped_early_at"], a["best"]["step"]) == (10, 4)
    for x, y in ((full / "best", cut / "best"), (full, cut)):
        wx, wy = _weights(x), _weights(y)
        assert wx.keys() == wy.keys() and max((wx[k] - wy[k]).abs().max().item() for k in wx) < 1e-6


def _fake_run(out_dir: Path) -> SimpleNamespace:
    cfg = load_config(None, ["train.eval_every=2", "train.keep_best=true"])
    return SimpleNamespace(cfg=cfg, out_dir=out_dir, accelerator=SimpleNamespace(is_main_process=True))


def _log_of(rows: list[dict]) -> SimpleNamespace:
    return SimpleNamespace(rows=lambda: rows)


def _copy(folder: Path, step: int) -> None:
    folder.mkdir(parents=True)
    (folder / "train_done.json").write_text(json.dumps({"steps": step}))


def test_a_resume_drops_a_best_copy_from_steps_it_redoes_and_finishes_an_interrupted_swap(tmp_path):
    rows = [
        {"step": 2, METRIC: 3.0},
        {"step": 4, METRIC: 2.0},
        {"step": 6, METRIC: 2.5},
    ]  # the log up to the checkpoint
    _copy(tmp_path / "best", 8)  # written after the checkpoint, by the killed run: the resumed run redoes step 8
    Selection(_fake_run(tmp_path), None, _log_of(rows))
    assert not (tmp_path / "best").exists()
    _copy(tmp_path / "best", 4)
    _copy(tmp_path / ".best.tmp", 8)  # a copy being written when the run was killed
    Selection(_fake_run(tmp_path), None, _log_of(rows))
    assert json.loads((tmp_path / "best" / "train_done.json").read_text())["steps"] == 4
    assert not (tmp_path / ".best.tmp").exists()
    os.replace(tmp_path / "best", tmp_path / ".best.old")  # killed between the swap's two renames
    Selection(_fake_run(tmp_path), None, _log_of(rows))
    assert json.loads((tmp_path / "best" / "train_done.json").read_text())["steps"] == 4
    assert not (tmp_path / ".best.old").exists()
    Selection(_fake_run(tmp_path), None, _log_of([]))  # no evaluation before the checkpoint: no best yet
    assert not (tmp_path / "best").exists()


def test_keep_best_on_the_real_held_out_loss_is_a_run_that_eval_reads(synth_dir, tmp_path):
    from prada.evaluation.evaluate import evaluate_run

    cfg = tiny_config(
        synth_dir,
        "method=ft-cot",
        "train.max_steps=6",
        "train.eval_every=2",
        "train.keep_best=true",
        "eval.max_new_tokens=16",
    )
    run = train(cfg, tmp_path / "r", progress=False)
    logged = {r["step"]: r[METRIC] for r in _log(run) if METRIC in r}
    assert sorted(logged) == [2, 4, 6]
    lowest = min(logged, key=lambda s: (logged[s], s))
    assert json.loads((run / "best" / "train_done.json").read_text())["steps"] == lowest
    assert json.loads((run / "train_done.json").read_text())["best"]["step"] == lowest
    result, _ = evaluate_run(run / "best", progress=False)
    assert result["datasets"] and 0 <= result["mean_accuracy"] <= 100
