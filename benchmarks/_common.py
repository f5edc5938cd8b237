"""Shared pieces of the benchmark scripts: device, timing, peak memory, matmul peak, a fixed-length data folder.

Benchmarks run each contender in its own subprocess (see `run_worker`), so the peak RSS a worker
reports is that contender's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from prada.report.environment import cpu_model, cpu_speed_flags

RESULT_TAG = "BENCH_RESULT "


def add_switch(p: argparse.ArgumentParser, flag: str, help: str) -> None:
    """A device switch's flag: auto | on | off, auto by default, as in prada's configs."""
    p.add_argument(flag, default="auto", choices=["auto", "on", "off"], help=help)


# --- device and dtype -----------------------------------------------------------------------------


def pick_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(name: str) -> str:
    """`auto` -> bf16 where the hardware has it (as prada's train.precision=auto does), else fp32."""
    if name != "auto":
        return name
    from prada.run_dir import bf16_supported

    return "bf16" if bf16_supported() else "fp32"


def torch_dtype(name: str) -> torch.dtype:
    return torch.bfloat16 if name == "bf16" else torch.float32


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine() -> str:
    """One line naming the hardware the figures come from."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    model = cpu_model()
    return (
        f"{model}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )


def host_state() -> dict:
    """Load average and the CPU's speed-relevant flags: a figure from a busy or different machine says so."""
    return {"load_average": [round(x, 2) for x in os.getloadavg()], "cpu_flags": cpu_speed_flags()}


# --- memory ---------------------------------------------------------------------------------------


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":  # bytes there
        kib /= 1024
    return kib / 1024**2


def peak_gpu_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 1024**3 if device.type == "cuda" else None


# --- matmul peak ----------------------------------------------------------------------------------


def matmul_peak_flops(dtype: str, device: torch.device, seconds: float = 2.0) -> float:
    """Best achieved FLOP/s of a large square torch.matmul in `dtype` on `device` (2 n^3 per product).

    The size is large enough for the BLAS to reach its plateau: 2048 on a CPU, 8192 on a GPU.
    """
    n = 8192 if device.type == "cuda" else 2048
    dt = torch_dtype(dtype)
    a = torch.randn(n, n, device=device, dtype=dt)
    b = torch.randn(n, n, device=device, dtype=dt)
    torch.matmul(a, b)  # warm-up: BLAS threads, GPU clocks
    sync(device)
    best, spent = 0.0, 0.0
    reps = 20 if device.type == "cuda" else 1
    while spent < seconds:
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b)
        sync(device)
        dt_s = time.perf_counter() - t0
        spent += dt_s
        best = max(best, reps * 2 * n**3 / dt_s)
    return best


# --- data ------------------------------------------------------------------------------------------

BENCH_DATASETS = ("synth_arithmetic", "synth_coin_flip", "synth_tracking")  # arithmetic, symbolic | other
TARGET_DOMAIN = "other"  # the adversary's unlabelled domain (ftcot12: date_understanding, tracking_shuffled_objects)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_bench_data(
    folder: Path,
    seq: int,
    n_train: int = 64,
    n_test: int = 16,
    seed: int = 0,
    lengths: str = "fixed",
    tokenizer=None,
    ftcot12_source: Path | None = None,
) -> Path:
    """A data folder (prada layout) of synthetic-suite questions with rationales sized for `seq`.

    Each rationale is that example's own rationale followed by other rationales of the same dataset.
    - lengths="fixed": 8 characters per wanted token, so `student.max_length=seq` truncates every
      prompt + target to exactly `seq` tokens. Every batch then has the same (B, seq) shape, and
      prada and transformers.Trainer do the same work whatever order they draw the items in.
    - lengths="spread": prompt + target lengths spread roughly uniformly over [seq/4, seq] tokens
      (cut at a word boundary, using `tokenizer`'s characters per token), like real CoT targets.
      Then how a trainer batches items decides how much padding it computes.
    - lengths="ftcot12": the real benchmark (12 datasets, text-davinci-002 rationales) built from
      `ftcot12_source` (a folder laid out like ../shared/data); sequences are cut at `seq`.
    """
    from prada.data.schema import Rationale, read_examples, write_examples
    from prada.data.synth import build_synth

    if (folder / "summary.json").exists():
        return folder
    if lengths == "ftcot12":
        from prada.data.ftcot12 import build_ftcot12

        build_ftcot12(folder, source=str(ftcot12_source))
        return folder
    raw = folder.with_name(folder.name + "-raw")
    build_synth(raw, seed=seed, n_train=n_train, n_test=n_test, datasets=list(BENCH_DATASETS), progress=False)
    rng = random.Random(seed)
    summary = {"datasets": {}}
    for ds in BENCH_DATASETS:
        train = read_examples(raw / ds / "train.jsonl")
        texts = [r.text for ex in train for r in ex.rationales]
        for ex in train:
            parts = [ex.rationales[0].text]
            while sum(len(p) + 1 for p in parts) < 8 * seq:
                parts.append(rng.choice(texts))
            text = " ".join(parts)
            if lengths == "spread":
                chars_per_token = len(text) / len(tokenizer(text, add_special_tokens=False)["input_ids"])
                q_tokens = len(tokenizer(ex.question, add_special_tokens=True)["input_ids"]) + 2
                want = rng.uniform(seq / 4, seq) - q_tokens - 4  # 4: " --> answer" and EOS
                text = text[: max(8, int(want * chars_per_token))].rsplit(" ", 1)[0]
            ex.rationales = [Rationale(text=text, answer=ex.answer, correct=True, teacher="bench")]
        (folder / ds).mkdir(parents=True, exist_ok=True)
        write_examples(folder / ds / "train.jsonl", train)
        test = read_examples(raw / ds / "test.jsonl")
        write_examples(folder / ds / "test.jsonl", test)
        summary["datasets"][ds] = {
            "domain": train[0].domain,
            "n_train": len(train),
            "n_test": len(test),
            "n_train_with_correct_rationale": len(train),
            "teacher_accuracy": 100.0,
        }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return folder


# --- workers ---------------------------------------------------------------------------------------


def emit(result: dict) -> None:
    """A worker's answer to its parent: one tagged JSON line on stdout."""
    print(RESULT_TAG + json.dumps(result), flush=True)


def run_worker(script: Path, args: list[str], timeout: float, log: Path | None = None) -> dict:
    """Run `python script --worker ...` in a fresh process; return the JSON it emits (or raise with its output)."""
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    if log is not None:
        log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    raise RuntimeError(
        f"worker {args[:2]} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )


def print_last_line(result: dict) -> None:
    """The benchmark contract: the last line of stdout is one JSON object."""
    print(json.dumps(result), flush=True)
