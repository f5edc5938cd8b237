"""Study 2's loss parts plugged into the seam: adversary.labels origin, prada-tlm, the head's own clip, snapshots."""

import json

import pytest
import torch
from tiny import tiny_config

from prada.distill.collate import TrainItem, collate
from prada.methods.adversary import domain_classes
from prada.train.student import build_student


def _batches(tok):
    source = collate(
        [
            TrainItem(tok("What is 2 + 2? ###")["input_ids"], tok(" 2 + 2 = 4 --> 4")["input_ids"], 0),
            TrainItem(tok("Hi there ###")["input_ids"], tok(" hello --> yes")["input_ids"], 1),
        ],
        tok.pad_token_id,
    )
    target = collate(
        [TrainItem(tok("A coin is heads up. ###")["input_ids"], [], 2), TrainItem(tok("Q ###")["input_ids"], [], 2)],
        tok.pad_token_id,
        with_labels=False,
    )
    return source, target


def test_origin_labels_make_two_classes_whatever_the_domains():
    assert domain_classes(["arithmetic", "symbolic", "other"], ["other"], "origin") == [0, 0, 1]
    assert domain_classes(["arithmetic", "symbolic", "other"], ["other"], "domain") == [0, 1, 2]
    assert domain_classes(["easy", "hard"], ["hard"], "origin") == [0, 1]
    from prada.errors import ConfigError

    with pytest.raises(ConfigError, match="adversary.labels: origin needs target domains"):
        domain_classes(["a", "b"], [], "origin")


def test_origin_head_classifies_source_against_target(synth_dir):
    cfg = tiny_config(synth_dir, "method=prada", "adversary.labels=origin")
    student, tok = build_student(cfg, 3, classes=[0, 0, 1])
    student.eval()
    assert student.adversary.num_classes == 2
    assert student.adversary.head.net[-1].out_features == 2
    source, target = _batches(tok)
    _, labels = student.adversary.features(torch.zeros(2, 3, 64), source.question_mask[:, :3], source.domain)
    assert labels.tolist() == [0, 0]  # domains 0 and 1 are both sources
    _, labels = student.adversary.features(torch.zeros(2, 3, 64), target.question_mask[:, :3], target.domain)
    assert labels.tolist() == [1, 1]
    losses, metrics = student(source, target, 0.5)
    assert metrics["domain_acc_majority"][0] == 0.5  # two source rows, two target rows
    assert metrics["domain_ce_chance"][0] == pytest.approx(torch.log(torch.tensor(2.0)))


def test_prada_tlm_is_prada_plus_the_target_lm_loss_in_one_target_pass(synth_dir):
    cfg = tiny_config(synth_dir, "method=prada-tlm", "train.target_lm_weight=0.7")
    student, tok = build_student(cfg, 3)
    student.eval()  # no dropout: both calls see the same network
    source, target = _batches(tok)
    calls = []
    forward = student.lm.forward
    student.lm.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    with torch.no_grad():
        both, _ = student(source, target, 0.5)
    assert set(both) == {"lm_loss", "target_lm_loss", "domain_loss"}
    assert len(calls) == 2 + 1  # the prompt prefix, the source pass, ONE target pass for both target parts
    student.target_lm_weight = 0.0  # prada: same weights, no target LM loss
    with torch.no_grad():
        prada, _ = student(source, target, 0.5)
        alone = student.question_lm_loss(target, student.prompt_prefix())
    assert set(prada) == {"lm_loss", "domain_loss"}
    assert torch.allclose(both["lm_loss"], prada["lm_loss"])
    assert torch.allclose(both["domain_loss"], prada["domain_loss"])
    assert torch.allclose(both["target_lm_loss"], 0.7 * alone, atol=1e-6)
    assert both["target_lm_loss"] > 0


def test_the_head_is_clipped_apart_from_the_student(synth_dir):
    from accelerate import Accelerator

    from prada.train.loop import clip_gradients

    cfg = tiny_config(synth_dir, "method=prada", "train.max_grad_norm=1000", "adversary.max_grad_norm=0.01")
    student, tok = build_student(cfg, 3)
    source, target = _batches(tok)
    losses, _ = student(source, target, 0.5)
    sum(losses.values()).backward()
    for p in student.adversary.parameters():
        p.grad.mul_(1e4)  # a head gradient that would dominate a joint norm
    before = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None and "adversary" not in n}
    norms = clip_gradients(Accelerator(cpu=True), student, cfg)
    assert norms["head_grad_norm"] > 1.0  # measured before clipping
    head = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in student.adversary.parameters()]))
    assert head <= 0.01 * 1.001
    for n, p in student.named_parameters():  # the student's step is untouched by the head's size
        if n in before:
            assert torch.equal(p.grad, before[n]), n


def test_meter_weights_metrics_as_the_seam_says():
    from prada.train.meter import Meter

    meter = Meter()
    meter.add(
        {"lm_loss": torch.tensor(0.25)}, {"acc": (torch.tensor(1.0), 0.75), "acc_target": (torch.tensor(0.5), 1.0)}
    )
    meter.add({"lm_loss": torch.tensor(0.5)}, {"acc": (torch.tensor(0.0), 0.25)})
    means = meter.means(lambda v, how: v, step=1, lr=1e-3)
    assert means == {"lm_loss": 0.75, "acc": 0.75, "acc_target": 0.5}
    meter.add({"lm_loss": torch.tensor(float("nan"))}, {})
    from prada.errors import PradaError

    with pytest.raises(PradaError, match="training diverged"):
        meter.means(lambda v, how: v, step=2, lr=1e-3)


def test_snapshots_are_runs_that_eval_reads_and_switches_are_recorded(synth_dir, tmp_path, capsys):
    from prada.evaluation.evaluate import evaluate_run
    from prada.train.loop import train

    cfg = tiny_config(synth_dir, "method=ft-cot", "train.max_steps=4", "train.snapshot_steps=[2]")
    run = train(cfg, tmp_path / "r", progress=True)
    assert "switches: share_prompt_prefix on, fused_adamw on, weight_first_linears" in capsys.readouterr().err
    done = json.loads((run / "train_done.json").read_text())
    assert done["switches"]["share_prompt_prefix"] is True  # auto on the CPU
    snap = run / "snapshots" / "step-2"
    assert json.loads((snap / "train_done.json").read_text())["steps"] == 2
    result, _ = evaluate_run(snap, progress=False)
    final, _ = evaluate_run(run, progress=False)
    assert set(result["datasets"]) == set(final["datasets"])
    assert result["switches"] == {"weight_first_linears": final["switches"]["weight_first_linears"]}
    assert isinstance(result["switches"]["weight_first_linears"], bool)


def test_dft_is_one_switch_on_the_cot_loss(synth_dir):
    cfg = tiny_config(synth_dir, "method=ft-cot", "train.loss=dft")
    student, tok = build_student(cfg, 3)
    student.eval()
    source, _ = _batches(tok)
    with torch.no_grad():
        dft, _ = student(source)
        student.dft = False
        ce, _ = student(source)
    assert set(dft) == {"lm_loss"} and 0 < dft["lm_loss"] < ce["lm_loss"]
