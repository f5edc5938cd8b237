"""The loop's loss seam: every label token of an optimizer step weighs the same, however micro-batches split them."""

import json
from types import SimpleNamespace

import pytest
import torch
from tiny import tiny_config

from prada.distill.collate import TrainItem, collate
from prada.distill.dataset import load_distillation_set
from prada.train.loop import Run, build_batches, train
from prada.train.student import StepShare, build_student


def _grads(student, loss_fn) -> dict[str, torch.Tensor]:
    student.zero_grad()
    loss_fn().backward()
    return {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}


def test_micro_batches_of_different_length_weigh_each_label_token_equally(synth_dir):
    """Two micro-batches (3 and 40+ label tokens) give the gradient of one batch holding all their tokens."""
    cfg = tiny_config(synth_dir, "method=ft-cot")
    student, tok = build_student(cfg, num_domains=3)
    student.eval()
    short = [TrainItem(tok("Q: 2 + 3? ###")["input_ids"], tok(" --> 5")["input_ids"], 0)]
    long = [
        TrainItem(
            tok("Q: flip? ###")["input_ids"], tok(" a coin flipped twice is heads up again --> yes")["input_ids"], 1
        ),
        TrainItem(tok("Q: day? ###")["input_ids"], tok(" the day after Monday is Tuesday --> Tuesday")["input_ids"], 2),
    ]
    micro = [collate(short, tok.pad_token_id), collate(long, tok.pad_token_id)]
    n = sum(b.num_target_tokens for b in micro)
    assert micro[0].num_target_tokens * 5 < micro[1].num_target_tokens  # lengths that a mean of means would skew

    reference = _grads(student, lambda: student(collate(short + long, tok.pad_token_id))[0]["lm_loss"])
    share = StepShare(label_tokens=n, micro_batches=2)
    seam = _grads(student, lambda: sum(sum(student(b, None, 0.0, share)[0].values()) for b in micro))
    mean_of_means = _grads(student, lambda: sum(student(b)[0]["lm_loss"] for b in micro) / 2)  # the old weighting

    assert reference.keys() == seam.keys()
    for name in reference:
        assert torch.allclose(seam[name], reference[name], atol=1e-6, rtol=1e-4), name
    assert not all(torch.allclose(mean_of_means[k], reference[k], atol=1e-6, rtol=1e-4) for k in reference)


def _run(cfg) -> Run:
    data = load_distillation_set(cfg.data, cfg.seed)
    student, tok = build_student(cfg, num_domains=len(data.domains))
    return Run(cfg, None, SimpleNamespace(num_processes=1, process_index=0), data, student, tok)


def test_logged_lm_loss_is_the_token_mean_of_the_whole_step(synth_dir, tmp_path):
    """grad_accum=2: the first logged lm_loss is the label-token mean over both micro-batches, not a mean of means."""
    cfg = tiny_config(synth_dir, "method=ft-cot", "train.grad_accum=2", "train.batch_size=4", "train.max_steps=1")
    run_dir = train(cfg, tmp_path / "r", progress=False)
    logged = json.loads((run_dir / "train_log.jsonl").read_text().splitlines()[0])["lm_loss"]

    run = _run(cfg)  # the same initial weights (seeded) and the same batches
    batches = build_batches(run)
    run.student.train()
    with torch.no_grad():
        pairs = [batches.micro_batch(g)[0] for g in range(2)]
        means = [float(run.student(b)[0]["lm_loss"]) for b in pairs]
    counts = [b.num_target_tokens for b in pairs]
    assert counts[0] != counts[1]
    token_mean = sum(m * c for m, c in zip(means, counts)) / sum(counts)
    assert logged == pytest.approx(token_mean, abs=1e-6)  # measured: within 1e-7
    assert abs(token_mean - sum(means) / 2) > 1e-5  # 10x the tolerance: a mean of means would fail (measured 7e-5)


def test_step_share_counts_the_label_tokens_of_every_process(synth_dir):
    """Each process divides by the step's label tokens over all processes / world, computed without communication."""
    cfg = tiny_config(synth_dir, "method=ft-cot", "train.grad_accum=3", "train.batch_size=2")
    run = _run(cfg)
    world = 2
    per_rank = []
    for rank in range(world):
        run.accelerator = SimpleNamespace(num_processes=world, process_index=rank)
        batches = build_batches(run)
        per_rank.append(batches)
    for step in range(3):
        counted = sum(
            b.micro_batch(step * 3 + m)[0].num_target_tokens for b in per_rank for m in range(3)
        )  # what the collated batches really hold
        for b in per_rank:
            share = b.share(step)
            assert share.label_tokens * world == counted and share.micro_batches == 3


def test_fused_adamw_takes_the_foreach_steps_to_a_stated_tolerance_and_a_resume_takes_this_runs_form(
    synth_dir, tmp_path
):
    """train.fused_adamw: on (the fused kernel) and off (foreach) are the same update in another summation order:
    six prada steps log losses within 1e-5 of each other and end with weights within 1e-5. A run resumed from
    a checkpoint of the other form steps in its own switch's form (a restored optimizer brings the saved one)."""
    from safetensors.torch import load_file

    from prada.train.loop import build_optimizer, prepare

    runs = {}
    for switch in ("on", "off"):
        cfg = tiny_config(
            synth_dir, "method=prada", "train.max_steps=6", "train.precision=fp32", f"train.fused_adamw={switch}"
        )
        run = train(cfg, tmp_path / switch, progress=False)
        assert json.loads((run / "train_done.json").read_text())["switches"]["fused_adamw"] is (switch == "on")
        logs = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
        weights = {k: v for f in sorted((run / "model").glob("*.safetensors")) for k, v in load_file(f).items()}
        runs[switch] = ([r["lm_loss"] for r in logs], [r["domain_loss"] for r in logs], weights)
    (lm_on, dom_on, w_on), (lm_off, dom_off, w_off) = runs["on"], runs["off"]
    assert len(lm_on) == 6 and lm_on == pytest.approx(lm_off, abs=1e-5) and dom_on == pytest.approx(dom_off, abs=1e-5)
    assert w_on.keys() == w_off.keys() and max((w_on[k] - w_off[k]).abs().max().item() for k in w_on) <= 1e-5
    assert any(not torch.equal(w_on[k], w_off[k]) for k in w_on)  # two forms, not one code path twice

    from prada.train.checkpoint import save_checkpoint

    run_dir = tmp_path / "resumed"  # a checkpoint of a prada version whose auto meant foreach on the CPU
    cfg = tiny_config(synth_dir, "method=ft-cot", "train.max_steps=4")
    model, optimizer, _ = build_optimizer(prepare(cfg, run_dir))
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = None, True
    save_checkpoint(run_dir, model, optimizer, step=2)
    _, optimizer, start = build_optimizer(prepare(cfg, run_dir))
    assert start == 2 and all(g["fused"] is True and g["foreach"] is None for g in optimizer.param_groups)
