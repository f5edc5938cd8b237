"""Several runs at once or one after another? K training processes side by side vs one process on all cores.

    python benchmarks/parallel_runs.py --config configs/study2-learning.yaml --method ft-cot --steps 14 \
        --set "data.datasets=[synth_coin_flip,synth_arithmetic,coin_flip,multiarith,addsub]"

A study is many independent runs. On a CPU whose one process does not scale to every core, K runs side by
side (each with cores/K torch threads) can finish the study sooner than the same runs one after another.
This measures it: first one `prada train` process with every core, then K identical processes at once
(same config and seed, so each trains the same batches), each `--steps` steps with nothing saved or
evaluated. A run's speed is the median of its logged `tokens_per_s` after `--warmup` steps; the K runs'
speeds add up to the side-by-side figure, and `aggregate_ratio` = side by side / one process: above 1,
run the study's runs in parallel. Prints one JSON line (with the load average and CPU flags before/after).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import host_state, machine, print_last_line  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="a run config (e.g. configs/study2-learning.yaml)")
    p.add_argument("--method", default=None, help="override the config's method")
    p.add_argument("--steps", type=int, default=14)
    p.add_argument("--warmup", type=int, default=2, help="logged steps skipped before measuring")
    p.add_argument("--processes", type=int, default=2, help="K runs side by side")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="threads of the lone run; K share them")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE for every run (repeatable)")
    p.add_argument("--workdir", required=True, help="run folders and their logs go here")
    return p.parse_args(argv)


def launch(a: argparse.Namespace, out: Path, threads: int) -> subprocess.Popen:
    """One `prada train` process: the config's data and model, `threads` torch threads, nothing saved."""
    overrides = [
        *([f"method={a.method}"] if a.method else []),
        f"train.max_steps={a.steps}",
        f"train.threads={threads}",
        "train.save_every=0",
        "train.eval_every=0",
        "train.snapshot_steps=[]",
        "train.log_every=1",
        *a.set,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    log = (out.parent / f"{out.name}.log").open("w")
    cmd = [sys.executable, "-m", "prada", "train", "--quiet", "--config", a.config, *overrides, "--out", str(out)]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def speed(out: Path, warmup: int) -> float:
    """Median logged training tokens/s of a finished run, after `warmup` steps."""
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    rates = [r["tokens_per_s"] for r in rows if r["step"] > warmup and r.get("tokens_per_s")]
    if not rates:
        raise RuntimeError(f"{out}: no logged step after the {warmup} warm-up steps")
    return statistics.median(rates)


def run_group(a: argparse.Namespace, names: list[str], threads: int) -> dict[str, dict]:
    """Start every run of the group at once, wait for all; each run's speed and wall time (model load included)."""
    work = Path(a.workdir)
    t0 = time.perf_counter()
    procs = {name: launch(a, work / name, threads) for name in names}
    walls = {}
    for name, proc in procs.items():
        if proc.wait() != 0:
            raise RuntimeError(f"{name} failed (exit {proc.returncode}): see {work / name}.log")
        walls[name] = time.perf_counter() - t0
    return {name: {"tokens_per_s": speed(work / name, a.warmup), "wall_s": round(walls[name], 1)} for name in names}


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    if a.warmup >= a.steps:
        raise SystemExit(f"--warmup {a.warmup} leaves no measured step of --steps {a.steps}")
    Path(a.workdir).mkdir(parents=True, exist_ok=True)
    host_before = host_state()
    print(f"[parallel_runs] one process, {a.cores} threads", file=sys.stderr, flush=True)
    lone = run_group(a, ["lone"], a.cores)["lone"]
    share = max(1, a.cores // a.processes)
    print(f"[parallel_runs] {a.processes} processes side by side, {share} threads each", file=sys.stderr, flush=True)
    side = run_group(a, [f"side-{k}" for k in range(a.processes)], share)
    aggregate = sum(r["tokens_per_s"] for r in side.values())
    out = {
        "benchmark": "parallel_runs",
        "config": a.config,
        "method": a.method,
        "set": a.set,
        "steps": a.steps,
        "warmup": a.warmup,
        "machine": machine(),
        "lone": {"threads": a.cores, **lone},
        "side_by_side": {"processes": a.processes, "threads_each": share, "runs": side},
        "side_by_side_tokens_per_s": aggregate,
        "aggregate_ratio": aggregate / lone["tokens_per_s"],
        "host_before": host_before,
        "host_after": host_state(),
    }
    print_last_line(out)
    return out


if __name__ == "__main__":
    main()
