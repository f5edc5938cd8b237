"""Data-parallel training on the CPU: `accelerate launch --num_processes 2 --cpu -m prada train ...`.

Two processes x batch 4 must train like one process x batch 8 (the same global batches, gradients
averaged over gloo). The runs cannot match bit for bit: each rank averages the loss over its own
target tokens before DDP averages the two means, and the adversary's dropout draws per rank.
So we compare the loss of both final students on the whole training set (and the logged losses).
Measured on the 2-core CPU: the final training-set losses differ by about 1%, the logged per-step
lm_loss by under 3%; a run whose ranks did not share gradients or data would drift much further.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from prada.config import load_config, save_config
from prada.distill.collate import build_train_items, collate
from prada.distill.dataset import load_distillation_set
from prada.train.backbones import resolve_model
from prada.train.loop import train
from prada.train.student import load_student
from tiny import make_synth, tiny_config

STEPS = 12
REL_TOL = 0.05  # final training-set lm_loss, 2 processes vs 1 (measured: ~1%)


def _free_port() -> int:
    with socket.socket() as s:  # several test sessions may share this machine: no fixed 29500
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dataset_loss(run: Path) -> float:
    """Token-weighted lm_loss of a run's final student over every training item (fixed order, eval mode)."""
    cfg = load_config(run / "config.yaml")
    data = load_distillation_set(cfg.data, cfg.seed)
    student, tokenizer = load_student(run, cfg)
    items = build_train_items(data.source_train, tokenizer, data.domains, cfg.student.max_length)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(items), 8):
            batch = collate(items[start : start + 8], tokenizer.pad_token_id)
            n = batch.num_target_tokens
            total += float(student(batch)["lm_loss"]) * n
            count += n
    return total / count


@pytest.fixture(scope="module")
def cache_and_data(tmp_path_factory):
    env = dict(os.environ)
    env.setdefault("PRADA_CACHE", str(tmp_path_factory.mktemp("prada-cache")))
    os.environ["PRADA_CACHE"] = env["PRADA_CACHE"]
    resolve_model("tiny-random")  # build once here, not raced by two ranks
    return env, make_synth(tmp_path_factory.mktemp("synth"))


def test_two_processes_train_like_one(cache_and_data, tmp_path):
    env, synth = cache_and_data
    overrides = ["method=prada", f"data.data_dir={synth}", f"train.max_steps={STEPS}", "train.save_every=0"]
    # --- 2 processes x batch 4 (gloo on CPU); accelerate configured by flags only: with --cpu,
    # `accelerate launch` ignores any ~/.cache/huggingface/accelerate/default_config.yaml
    env = {**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    two = tmp_path / "two"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1", "--cpu",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
           "--main_process_port", str(_free_port()),
           "-m", "prada", "train", "--config", str(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"),
           *overrides, "train.batch_size=4", "--out", str(two)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (two / "train_done.json").exists()
    saved = load_config(two / "config.yaml")
    assert saved.train.batch_size == 4
    rows2 = [json.loads(line) for line in (two / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows2] == list(range(1, STEPS + 1)), "rank 0 alone must write the log, once per step"

    # --- 1 process x batch 8: the same global batches
    cfg = tiny_config(synth, *overrides, "train.batch_size=8")
    save_config(cfg, tmp_path / "one.yaml")
    one = train(cfg, tmp_path / "one", progress=False)
    rows1 = [json.loads(line) for line in (one / "train_log.jsonl").read_text().splitlines()]

    # step 1: same weights, same global batch; the 2-process log shows rank 0's half of it
    assert rows2[0]["lm_loss"] == pytest.approx(rows1[0]["lm_loss"], rel=0.02)
    last2 = sum(r["lm_loss"] for r in rows2[-3:]) / 3
    last1 = sum(r["lm_loss"] for r in rows1[-3:]) / 3
    assert last2 == pytest.approx(last1, rel=0.08)
    assert last2 < rows2[0]["lm_loss"] - 0.5, "the 2-process run did not learn"

    final2, final1 = _dataset_loss(two), _dataset_loss(one)
    print(f"2-proc run {seconds:.1f}s; final training-set lm_loss 2x4={final2:.4f} 1x8={final1:.4f} "
          f"(rel diff {abs(final2 - final1) / final1:.3%}); last-3 logged {last2:.4f} vs {last1:.4f}")
    assert final2 == pytest.approx(final1, rel=REL_TOL)
