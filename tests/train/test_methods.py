"""Method matrix over the registry: loss falls, only the declared parts change, checkpoints reload with plain HF/peft."""

import json

import pytest
import torch
from safetensors.torch import load_file
from tiny import tiny_config

from prada.methods.registry import METHODS
from prada.model_aliases import resolve_model
from prada.train.loop import train

TRAINED = [m for m, spec in METHODS.items() if spec.train]


def _losses(run_dir):
    return [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method", TRAINED)
def test_loss_falls_and_checkpoint_reloads(method, synth_dir, tmp_path):
    cfg = tiny_config(synth_dir, f"method={method}", "train.max_steps=30", "train.save_every=0")
    run = train(cfg, tmp_path / method, progress=False)
    log = _losses(run)
    assert len(log) == 30 and [r["step"] for r in log] == list(range(1, 31))
    first = sum(r["lm_loss"] for r in log[:3]) / 3
    last = sum(r["lm_loss"] for r in log[-3:]) / 3
    assert last < 0.8 * first, (method, first, last)
    spec = METHODS[method]
    if spec.adversary:
        assert all(r["domain_loss"] is not None and 0 <= r["domain_acc"] <= 1 for r in log)
        assert log[0]["lambda"] == 0.0 and log[-1]["lambda"] > log[1]["lambda"]
    else:
        assert all(r["domain_loss"] is None for r in log)

    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"))
    if spec.backbone == "full":  # the backbone changed and reloads with plain transformers
        tuned = AutoModelForCausalLM.from_pretrained(run / "model")
        diff = max((a - b).abs().max().item() for a, b in zip(base.state_dict().values(), tuned.state_dict().values()))
        assert diff > 0
    if spec.prompt:  # the prompt reloads as a plain peft P-tuning adapter
        from peft import PeftModel

        peft_model = PeftModel.from_pretrained(base, str(run / "prompt"))
        saved = load_file(str(run / "prompt" / "adapter_model.safetensors"))["prompt_embeddings"]
        assert torch.allclose(peft_model.get_prompt(batch_size=1)[0], saved)
    assert (run / "domain_head.safetensors").exists() == spec.adversary


def test_frozen_backbone_changes_only_prompt_and_head(synth_dir, tmp_path):
    cfg = tiny_config(synth_dir, "method=prada", "train.backbone=frozen", "train.max_steps=3")
    run = train(cfg, tmp_path / "frozen", progress=False)
    assert not (run / "model").exists()  # the untouched backbone is not copied
    assert (run / "prompt" / "adapter_model.safetensors").exists()


def test_lora_backbone_saves_a_peft_adapter(synth_dir, tmp_path):
    cfg = tiny_config(synth_dir, "method=prada", "train.backbone=lora", "train.max_steps=3")
    run = train(cfg, tmp_path / "lora", progress=False)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"))
    model = PeftModel.from_pretrained(base, str(run / "lora"))
    assert any("lora_" in n for n, _ in model.named_parameters())


def test_only_declared_parameters_receive_gradients(synth_dir):
    from prada.distill.collate import build_train_items, collate
    from prada.distill.dataset import load_distillation_set
    from prada.train.student import build_student

    cfg = tiny_config(synth_dir, "method=prada", "train.backbone=frozen")
    data = load_distillation_set(cfg.data)
    student, tok = build_student(cfg, len(data.domains))
    items = build_train_items(data.source_train[:4], tok, data.domains, 256)
    losses, _ = student(collate(items, tok.pad_token_id), None, 0.5)
    (losses["lm_loss"] + losses["domain_loss"]).backward()
    for name, p in student.named_parameters():
        declared = name.startswith(("prompt.", "adversary."))
        assert p.requires_grad == declared, name
        if declared and "lstm" not in name:
            assert p.grad is not None, name
