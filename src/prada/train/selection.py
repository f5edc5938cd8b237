"""Copies of the student as finished run folders, and picking one by its held-out source CoT loss.

- `train.snapshot_steps`: the student at fixed steps, RUN_DIR/snapshots/step-N;
- `train.keep_best`: the student at its lowest held-out source CoT loss so far, RUN_DIR/best;
- `train.early_stopping_patience`: stop after that many held-out evaluations without a new lowest loss.

Each copy is a run folder that `prada eval --run` reads like any other. The held-out loss is the one the
loop logs every `train.eval_every` steps (`heldout_lm_loss_source`, train/diagnostics.py), so a resumed run
recovers the best so far from its train_log.jsonl, trimmed to the checkpoint it resumes from.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from prada.config import save_config
from prada.errors import PradaError
from prada.io import atomic_write_json, link_error, refuse_links
from prada.run_dir import BEST, CONFIG, DONE, SNAPSHOTS
from prada.train.student import save_student

METRIC = "heldout_lm_loss_source"  # the held-out figure a student is picked by: lower is better


def write_run_copy(run, model: torch.nn.Module, folder: Path, done: dict) -> None:
    """The student as it is now, as a finished run folder at `folder` (config.yaml, weights, train_done.json).

    Written into a sibling temp folder and swapped in, so a kill never leaves a half-written copy under the
    name (`best` is replaced many times). The main process writes; every process waits for it.
    """
    accelerator = run.accelerator
    if accelerator.is_main_process:
        tmp, old = _siblings(folder)
        if folder.parent.is_symlink():
            raise link_error(folder.parent)
        refuse_links(tmp, old, folder)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_config(run.cfg, tmp / CONFIG)
        save_student(accelerator.unwrap_model(model), run.tokenizer, run.cfg, tmp)
        atomic_write_json(tmp / DONE, done)
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _siblings(folder: Path) -> tuple[Path, Path]:
    """The temp folder a copy is written into, and where the previous copy waits during the swap."""
    return folder.parent / f".{folder.name}.tmp", folder.parent / f".{folder.name}.old"


def save_snapshot(run, model: torch.nn.Module, step: int) -> None:
    """The student at `step` (train.snapshot_steps) as SNAPSHOTS/step-N (learning curves; accuracy at
    pre-registered checkpoints)."""
    done = {"steps": step, "snapshot_of": str(run.out_dir), "switches": run.switches, "data": run.fingerprint}
    write_run_copy(run, model, run.out_dir / SNAPSHOTS / f"step-{step}", done)


@dataclass
class EarlyStopping:
    """The lowest held-out loss so far, its step, and the evaluations since it. Bookkeeping only: no I/O."""

    patience: int = 0  # evaluations without a new lowest loss before stopping (0: never)
    best: float = math.inf
    best_step: int | None = None
    since_best: int = 0

    def update(self, step: int, value: float | None) -> bool:
        """Record the evaluation at `step`; True when its value is a new lowest (a missing or NaN value is not)."""
        if value is not None and value < self.best:
            self.best, self.best_step, self.since_best = value, step, 0
            return True
        self.since_best += 1
        return False

    @property
    def stop(self) -> bool:
        return self.patience > 0 and self.since_best >= self.patience

    @classmethod
    def replay(cls, rows: list[dict], patience: int) -> EarlyStopping:
        """The state after every evaluation logged in `rows` (train_log.jsonl lines), in step order."""
        state = cls(patience)
        logged = [r for r in rows if METRIC in r and isinstance(r.get("step"), int)]
        for row in sorted(logged, key=lambda r: r["step"]):
            value = row[METRIC]
            state.update(row["step"], value if isinstance(value, (int, float)) else None)
        return state


class Selection:
    """`train.keep_best` and `train.early_stopping_patience` in the loop.

    Every process calls `after_step` after every step. At the held-out evaluations the main process (the only
    one with held-out figures) records the loss, and all processes agree on whether to save RUN_DIR/best and
    whether to stop, so their collective calls stay in step.
    """

    def __init__(self, run, held, log):
        """`held`: the held-out set (None on the other processes); `log`: the run's TrainLog, already trimmed to
        the step the run starts from (its evaluations give the best so far)."""
        t = run.cfg.train
        self.run, self.keep_best = run, t.keep_best
        self.enabled = bool(t.eval_every and (t.keep_best or t.early_stopping_patience))
        self.main = run.accelerator.is_main_process
        rows = log.rows() if self.enabled and self.main else []
        self.state = EarlyStopping.replay(rows, t.early_stopping_patience)
        self.stopped_at: int | None = None
        if self.enabled and self.main:
            if held is not None and not held.cot_source:
                raise PradaError(
                    "train.keep_best / train.early_stopping_patience: no held-out source question has a correct "
                    "teacher rationale, so there is no held-out source CoT loss to pick a student by"
                )
            self._tidy_best()

    def after_step(self, model: torch.nn.Module, step: int, total: int, heldout: dict) -> bool:
        """After step `step`: at an evaluation, keep the student if its loss is the lowest so far; True: stop now."""
        every = self.run.cfg.train.eval_every
        if not self.enabled or (step % every and step != total):
            return False
        improved = self.state.update(step, heldout.get(METRIC)) if self.main else False
        improved, stop = self._agree(improved, self.state.stop and step < total)
        if improved and self.keep_best:
            done = {
                "steps": step,
                "best_of": str(self.run.out_dir),
                "selected_on": METRIC,
                METRIC: self.state.best if self.main else None,
                "switches": self.run.switches,
                "data": self.run.fingerprint,
            }
            write_run_copy(self.run, model, self.run.out_dir / BEST, done)
        if stop:
            self.stopped_at = step
        return stop

    def _agree(self, *flags: bool) -> list[bool]:
        """The main process's flags on every process (the others pass False)."""
        accelerator = self.run.accelerator
        if accelerator.num_processes == 1:
            return list(flags)
        t = torch.tensor([float(f) for f in flags], device=accelerator.device)
        return [bool(v > 0) for v in accelerator.reduce(t, "sum")]

    def summary(self, total: int) -> dict:
        """What train_done.json records about the selection: where the run stopped early, and the best step."""
        out: dict = {}
        if self.stopped_at is not None:
            out = {"steps": self.stopped_at, "planned_steps": total, "stopped_early_at": self.stopped_at}
        if self.keep_best and self.state.best_step is not None:
            out["best"] = {"step": self.state.best_step, METRIC: self.state.best, "folder": BEST}
        return out

    def _tidy_best(self) -> None:
        """Make RUN_DIR/best agree with the best step replayed from the log: finish a swap a kill interrupted,
        drop a temp folder, and drop a copy from a step after the checkpoint (the resumed run redoes it)."""
        folder = self.run.out_dir / BEST
        tmp, old = _siblings(folder)
        refuse_links(tmp, old, folder)
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not folder.exists():
            os.replace(old, folder)
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists() and (self.state.best_step is None or _copy_step(folder) != self.state.best_step):
            shutil.rmtree(folder)


def _copy_step(folder: Path) -> int | None:
    """The step a run copy holds (its train_done.json `steps`); None when it has none readable."""
    try:
        steps = json.loads((folder / DONE).read_text(encoding="utf-8")).get("steps")
    except (OSError, ValueError, AttributeError):
        return None
    return steps if isinstance(steps, int) else None
