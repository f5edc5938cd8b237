"""Kill -9 harness: start a `prada` command, SIGKILL it at a seeded random point of its progress, rerun until done.

Two ways to start the command, both ending in `prada.cli.main(argv)`:
- `Subprocess`: `python -m prada ...`, a fresh interpreter (data synth/build, teach: cheap imports);
- `Forked`: a child forked from a multiprocessing forkserver that has already imported torch/transformers,
  so trials do not pay the 3-15 s import each time on this loaded 2-core machine. The child is a real
  process with its own pid, killed with SIGKILL exactly like the subprocess. Forked children share the
  forkserver's string-hash seed, so the uninterrupted reference runs use `Subprocess` (a fresh interpreter):
  a result that depended on set order or an unseeded RNG would then differ between reference and trial.

A kill point is (progress threshold, extra delay): the harness polls a progress counter of the command's
own outputs (files written, cache lines, log lines) every few milliseconds, and once it reaches the
threshold sleeps the delay and sends SIGKILL. Threshold 0 means a pure time delay from the start, which may
land before any work (still a valid trial, reported apart).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from prada.data.schema import Example, write_examples

REPO = Path(__file__).resolve().parents[2]
# One torch thread in every child: with other jobs on this 2-core machine, two spinning OpenMP threads per
# process made a 1.4 s tiny training take 60 s. Every run (reference and trials) uses the same setting.
BASE_ENV = {"OMP_NUM_THREADS": "1"}
TEACHER = "openai:fake-model"
PRELOAD = [
    "prada.cli",
    "prada.train.loop",
    "prada.evaluation.evaluate",
    "prada.teacher.zeroshot_cot",
    "reliability.harness",
]


def run_cli(argv: list[str], log: str, env: dict) -> None:
    """Forked child: redirect stdout/stderr to `log`, apply `env`, run the CLI (exit code as `python -m prada`)."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.update(env)
    os.chdir(REPO)
    random.seed()  # a fresh interpreter would not share the forkserver's Python RNG state
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())  # not tqdm's multiprocessing lock: a SIGKILLed child would leak its semaphore
    if "OMP_NUM_THREADS" in env:  # torch is already imported here: apply the thread count a fresh process would read
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    from prada.cli import main

    main(argv)


class Proc:
    """One running command: poll() -> exit code or None; kill() sends SIGKILL; wait() -> exit code (-9 when killed)."""

    def poll(self) -> int | None: ...
    def kill(self) -> None: ...
    def wait(self, timeout: float) -> int: ...


class Subprocess(Proc):
    def __init__(self, argv: list[str], log: Path, env: dict):
        env = {**BASE_ENV, **env}
        self._f = open(log, "ab")
        self.p = subprocess.Popen(
            [sys.executable, "-m", "prada", *argv],
            stdout=self._f,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=REPO,
        )

    def poll(self):
        return self.p.poll()

    def kill(self):
        self.p.send_signal(signal.SIGKILL)

    def wait(self, timeout):
        try:
            return self.p.wait(timeout)
        finally:
            self._f.close()


class Forked(Proc):
    _ctx = None

    @classmethod
    def context(cls):
        if cls._ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            cls._ctx = ctx
        return cls._ctx

    def __init__(self, argv: list[str], log: Path, env: dict):
        env = {**BASE_ENV, **env}
        self.p = self.context().Process(target=run_cli, args=(argv, str(log), env), daemon=True)
        self.p.start()

    def poll(self):
        return self.p.exitcode

    def kill(self):
        # The forkserver, not this process, reaps the child: it can be gone before exitcode says so.
        if self.p.exitcode is None:
            try:
                os.kill(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self, timeout):
        self.p.join(timeout)
        if self.p.exitcode is None:
            self.kill()
            self.p.join(10)
            raise TimeoutError(f"command did not finish in {timeout} s")
        return self.p.exitcode


@dataclass
class Kill:
    threshold: int
    delay: float
    progress_at_kill: int = -1
    outcome: str = ""  # "mid-work" | "before-work" | "after-work" | "finished-first"


@dataclass
class Trial:
    command: str
    seed: int
    kills: list[Kill] = field(default_factory=list)
    reruns: int = 0

    @property
    def landed_mid_work(self) -> int:
        return sum(k.outcome == "mid-work" for k in self.kills)


def run_until_done(
    command: str,
    seed: int,
    start: Callable[[], Proc],
    progress: Callable[[], int],
    finished: Callable[[], bool],
    plan: list[tuple[int, float]],
    log: Path,
    timeout: float = 300.0,
) -> Trial:
    """Run `start()` once per planned kill (killing it at its point), then once more to completion.

    `plan` holds (threshold, delay) pairs; thresholds count from the progress seen when that run starts.
    A run that exits before its kill point ends the plan early ("finished-first").
    """
    trial = Trial(command, seed)
    deadline = time.monotonic() + timeout
    for threshold, delay in plan:
        base = progress()
        proc = start()
        kill = Kill(threshold, delay)
        trial.kills.append(kill)
        t0, was_finished = time.monotonic(), False
        while proc.poll() is None and time.monotonic() < deadline:
            if (threshold == 0 and time.monotonic() - t0 >= delay) or (
                threshold > 0 and progress() >= base + threshold
            ):
                if threshold > 0:
                    time.sleep(delay)
                was_finished = finished()
                proc.kill()
                break
            time.sleep(0.003)
        code = proc.wait(60)
        if code != -signal.SIGKILL:
            assert code == 0, f"{command} (seed {seed}) exited {code} before its kill; log:\n{log.read_text()[-3000:]}"
            kill.outcome = "finished-first"
            kill.progress_at_kill = progress()
            return trial
        kill.progress_at_kill = progress()
        kill.outcome = "after-work" if was_finished else ("mid-work" if kill.progress_at_kill > 0 else "before-work")
    # The same command once more, left alone: it must finish cleanly.
    trial.reruns += 1
    code = start().wait(max(10.0, deadline - time.monotonic()))
    assert code == 0, f"{command} (seed {seed}) rerun exited {code}; log:\n{log.read_text()[-3000:]}"
    assert finished(), f"{command} (seed {seed}): the rerun exited 0 but its outputs are not complete"
    return trial


def kill_plan(
    rng: random.Random,
    max_threshold: int,
    max_delay: float,
    n_kills: int,
    min_threshold: int = 1,
    pure_delays: bool = True,
) -> list[tuple[int, float]]:
    """Seeded kill points: mostly progress thresholds in [min_threshold, max_threshold] plus a delay, sometimes
    (when `pure_delays`) a pure delay from the start."""
    plan = []
    for _ in range(n_kills):
        if pure_delays and rng.random() < 0.15:
            plan.append((0, rng.uniform(0.05, 1.0)))
        else:
            plan.append((rng.randint(min_threshold, max(min_threshold, max_threshold)), rng.uniform(0.0, max_delay)))
    return plan


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def count_files(root: Path, suffixes: tuple[str, ...] = (".jsonl", ".json")) -> int:
    n = 0
    for _dirpath, _, files in os.walk(root):
        n += sum(1 for f in files if f.endswith(suffixes) and not f.startswith("."))
    return n


def visible_files(root: Path) -> dict[str, bytes]:
    """Every non-hidden file under root (hidden: caches, temp files, lock files), relative path -> bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[str(rel)] = p.read_bytes()
    return out


def stale_temp_files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name.endswith((".tmp", ".part"))
    )


def make_teach_data(root: Path, n_arith: int = 16, n_parity: int = 8, n_pick: int = 6) -> Path:
    """Teachable data for tests/teacher/fake_openai.py: three datasets whose questions the fake server answers; every 4th sum is "(hard)", which it gets wrong."""
    sets = {
        "arith": [
            Example(
                f"Ann has {3 + i} pens{' (hard)' if i % 4 == 3 else ''}. what is {3 + i} + {2 * i + 1}?",
                str(3 * i + 4),
                "number",
                "arithmetic",
                "arith",
                f"arith-{i}",
            )
            for i in range(n_arith)
        ],
        "parity": [
            Example(f"is {n} even?", "yes" if n % 2 == 0 else "no", "yes_no", "symbolic", "parity", f"parity-{n}")
            for n in range(20, 20 + n_parity)
        ],
        "pick": [
            Example(
                f"which is largest? (A) {i + 1} (B) {3 * i + 5} (C) {i + 2}",
                "B",
                "choice",
                "other",
                "pick",
                f"pick-{i}",
                ["A", "B", "C"],
            )
            for i in range(n_pick)
        ],
    }
    summary = {"datasets": {}}
    for name, exs in sets.items():
        write_examples(root / name / "train.jsonl", exs)
        write_examples(root / name / "test.jsonl", exs[:2])
        summary["datasets"][name] = {
            "domain": exs[0].domain,
            "n_train": len(exs),
            "n_test": 2,
            "n_train_with_correct_rationale": 0,
            "teacher_accuracy": 0.0,
        }
    (root / "summary.json").write_text(json.dumps(summary))
    return root


# --- shared by the bad-input tests ---------------------------------------------------------------------------

VALID = {
    "question": "What is 2 + 3?",
    "answer": "5",
    "answer_type": "number",
    "domain": "arithmetic",
    "dataset": "toy",
    "id": "toy-1",
    "rationales": [{"text": "2 + 3 = 5.", "answer": "5", "correct": True, "teacher": "t"}],
}
"""One valid example line (as a dict) for tests to mutate."""


def cli_error(*argv: str, capsys) -> str:
    """Run prada in-process; assert exit 2 with one `prada: error:` line and no traceback; return that line."""
    import pytest

    from prada.cli import main

    with pytest.raises(SystemExit) as ei:
        main(list(argv))
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("prada:")]  # progress bars share stderr
    assert ei.value.code == 2, err
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("prada: error:"), err
    return lines[0]
