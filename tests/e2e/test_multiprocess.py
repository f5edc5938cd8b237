"""Data-parallel training on the CPU (gloo): two processes x batch 4 must train like one process x batch 8.

How to launch it on a machine without a GPU (accelerate 1.x):
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 -m prada train ...
`--multi_gpu` makes accelerate spawn the processes (torchrun); ACCELERATE_USE_CPU makes each one
join a gloo group on the CPU. Beware `accelerate launch --cpu --num_processes 2`: without an MPI
hostfile accelerate starts ONE process, which then trains alone at the per-process batch size; and
`--multi_gpu` without ACCELERATE_USE_CPU starts two processes that each train alone (world size 1)
and both write the run folder. The checks below catch both.

The runs cannot match bit for bit: each rank averages the loss over its own target tokens before DDP
averages the two means, and the adversary's dropout draws differ. Measured on the 2-core CPU (prada,
12 steps of tiny.yaml), relative to the 1-process run's backbone update dW = W_final - W_init:
    2 x 4 (correct data parallel)       |dW' - dW| / |dW| = 0.05   training-set lm_loss 3.9509 vs 3.9530
    1 x 8 with seed=1                   0.43                       3.9555
    1 x 4 (what a lone rank trains)     0.98                       3.9657
So the update distance separates a correct run from a broken one by an order of magnitude, while the
final loss barely moves over 12 steps (we still check it, within 2%).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil  # accelerate's own dependency
import pytest
import torch
from safetensors.torch import load_file
from tiny import make_synth, tiny_config

from prada.config import load_config
from prada.distill.collate import build_train_items, collate
from prada.distill.dataset import load_distillation_set
from prada.model_aliases import resolve_model
from prada.train.loop import train
from prada.train.student import load_student

STEPS = 12
UPDATE_TOL = 0.2  # |dW_2proc - dW_1proc| / |dW_1proc|; measured 0.05 (a lone rank: 0.98, another seed: 0.43)
LOSS_TOL = 0.02  # relative, final training-set lm_loss; measured 0.05%


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
            total += float(student(batch)[0]["lm_loss"]) * n
            count += n
    return total / count


def _backbone_update(run: Path, init: dict[str, torch.Tensor]) -> torch.Tensor:
    """W_final - W_init of the saved full backbone, flattened."""
    final = load_file(str(run / "model" / "model.safetensors"))
    return torch.cat([(final[k] - init[k]).flatten() for k in sorted(init)])


def _launch_two(env: dict, overrides: list[str], out: Path, tmp_path: Path) -> subprocess.Popen:
    """`prada train` as 2 processes (gloo on CPU), launched by flags only: HF_HOME points at an empty folder so
    no ~/.cache/huggingface/accelerate/default_config.yaml can change the launch."""
    env = {
        **env,
        "ACCELERATE_USE_CPU": "true",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
    }
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--num_cpu_threads_per_process",
        "1",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "prada",
        "train",
        "--config",
        str(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"),
        *overrides,
        "--out",
        str(out),
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: float, hang: str = "") -> str:
    """The launch's output; on a timeout, kill every rank (torchrun starts each in its own session) and fail
    with what they printed, rather than leave them running and lose the output."""
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        for rank in psutil.Process(proc.pid).children(recursive=True):
            rank.kill()
        proc.kill()
        text, _ = proc.communicate()
        pytest.fail(f"the 2-process run hung for {timeout:.0f} s: {hang}\n" + text[-3000:])


@pytest.fixture(scope="module")
def cache_and_data(tmp_path_factory):
    saved = os.environ.get("PRADA_CACHE")
    if saved is None:
        os.environ["PRADA_CACHE"] = str(tmp_path_factory.mktemp("prada-cache"))
    model = Path(resolve_model("tiny-random"))  # build once here, not raced by two ranks
    yield dict(os.environ), make_synth(tmp_path_factory.mktemp("synth")), model
    if saved is None:
        os.environ.pop("PRADA_CACHE", None)


@pytest.mark.parametrize("layer", [-1, 1], ids=["features-top", "features-layer1-target-pass-stops-early"])
def test_two_processes_train_like_one(cache_and_data, tmp_path, layer):
    env, synth, model = cache_and_data
    overrides = [
        "method=prada",
        f"data.data_dir={synth}",
        f"train.max_steps={STEPS}",
        "train.save_every=0",
        f"adversary.layer={layer}",
    ]
    two = tmp_path / "two"
    t0 = time.perf_counter()
    proc = _launch_two(env, [*overrides, "train.batch_size=4"], two, tmp_path)

    # --- meanwhile, 1 process x batch 8: the same global batches
    cfg = tiny_config(synth, *overrides, "train.batch_size=8")
    one = train(cfg, tmp_path / "one", progress=False)
    rows1 = [json.loads(line) for line in (one / "train_log.jsonl").read_text().splitlines()]

    out = _finish(proc, timeout=240)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, out[-5000:]
    assert (two / "train_done.json").exists()
    assert load_config(two / "config.yaml").train.batch_size == 4
    rows2 = [json.loads(line) for line in (two / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows2] == list(range(1, STEPS + 1)), "one log line per step: did each rank train alone?"

    # every figure first, printed, so that a failure of any assertion below shows all of them
    last2 = sum(r["lm_loss"] for r in rows2[-3:]) / 3
    last1 = sum(r["lm_loss"] for r in rows1[-3:]) / 3
    init = load_file(str(model / "model.safetensors"))
    d2, d1 = _backbone_update(two, init), _backbone_update(one, init)
    update_diff = float((d2 - d1).norm() / d1.norm())
    final2, final1 = _dataset_loss(two), _dataset_loss(one)
    print(
        f"2-proc run {seconds:.1f}s; step-1 lm_loss {rows2[0]['lm_loss']:.4f} vs {rows1[0]['lm_loss']:.4f}; "
        f"|dW2-dW1|/|dW1|={update_diff:.3f}; training-set lm_loss 2x4={final2:.4f} 1x8={final1:.4f}; "
        f"last-3 logged {last2:.4f} vs {last1:.4f}\n2-process output (tail):\n{out[-3000:]}"
    )

    # step 1: same weights, same global batch; the 2-process log shows rank 0's half of it
    assert rows2[0]["lm_loss"] == pytest.approx(rows1[0]["lm_loss"], rel=0.02)
    assert last2 == pytest.approx(last1, rel=0.08)
    assert last2 < rows2[0]["lm_loss"] - 0.5, "the 2-process run did not learn"
    assert update_diff < UPDATE_TOL, "2-process updates differ from the 1-process run: gradients or batches not shared"
    assert final2 == pytest.approx(final1, rel=LOSS_TOL)


def test_two_processes_finish_when_held_out_evaluations_fall_between_log_lines(cache_and_data, tmp_path):
    """Only the main process evaluates the held-out set; every rank must still agree on which steps write a
    log line (each one is a cross-process mean), or the main process waits forever in the all-reduce."""
    env, synth, _ = cache_and_data
    out = tmp_path / "two"
    overrides = ["method=prada", f"data.data_dir={synth}", "train.max_steps=8", "train.save_every=0"]
    proc = _launch_two(
        env, [*overrides, "train.batch_size=4", "train.log_every=4", "train.eval_every=3"], out, tmp_path
    )
    text = _finish(proc, timeout=180, hang="a log line's cross-process mean entered by one rank only?")
    assert proc.returncode == 0, text[-5000:]
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 4, 6, 8]
    assert all("heldout_lm_loss_source" in r for r in rows if r["step"] in (3, 6, 8))
