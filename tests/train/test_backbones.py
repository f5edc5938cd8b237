"""Backbone options: train.gradient_checkpointing and lora.target_modules (train/backbones.py)."""

import pytest
import torch
from tiny import tiny_config

from prada.distill.collate import TrainItem, collate
from prada.errors import ConfigError
from prada.hf_compat import checkpointed_layers
from prada.run_dir import resolve_switches
from prada.train.student import build_student, decoder_layers


def _batches(tok):
    source = [
        TrainItem(tok("Q: 2 + 3? ###")["input_ids"], tok(" 2 + 3 = 5 --> 5")["input_ids"], 0),
        TrainItem(tok("Q: a longer question about coins? ###")["input_ids"], tok(" heads --> yes")["input_ids"], 1),
    ]
    target = [TrainItem(tok("Which day is it? ###")["input_ids"], [], 2), TrainItem(tok("Hi ###")["input_ids"], [], 2)]
    return collate(source, tok.pad_token_id), collate(target, tok.pad_token_id, with_labels=False)


def _step(cfg):
    """Losses, gradients, and how often the first decoder layer's MLP ran in the backward pass, of one training-mode
    step of a freshly built student (dropout on: the recomputed layers must replay the same masks)."""
    student, tok = build_student(cfg, num_domains=3, switches=resolve_switches(cfg, "cpu"))
    student.train()
    calls = []
    # a pre-hook inside the first layer: it runs again when the layer is recomputed (a forward hook at its end may
    # not: torch stops a recompute once it has the tensors the backward needs)
    decoder_layers(student.lm)[0].self_attn.register_forward_pre_hook(lambda *a: calls.append(1))
    source, target = _batches(tok)
    torch.manual_seed(1)
    losses, _ = student(source, target, lam=0.5)
    forward_calls = len(calls)
    sum(losses.values()).backward()
    grads = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads, len(calls) - forward_calls, student


def _assert_same(a, b):
    (a_losses, a_grads, *_), (b_losses, b_grads, *_) = a, b
    assert a_losses.keys() == b_losses.keys() and a_grads.keys() == b_grads.keys() and a_grads
    for name in a_losses:
        assert torch.allclose(a_losses[name], b_losses[name], atol=1e-5), name
    for name in a_grads:
        assert torch.allclose(a_grads[name], b_grads[name], atol=1e-5, rtol=1e-4), name


CHECKPOINTING = "train.gradient_checkpointing=true"


@pytest.mark.parametrize("method, backbone", [("ft-cot", "full"), ("prada", "full"), ("prada", "lora")])
def test_gradient_checkpointing_gives_the_same_losses_and_gradients(synth_dir, method, backbone):
    """On, every decoder layer is recomputed in the backward pass, with the same dropout masks: the same losses and
    gradients as off. For prada also against the CPU's default path, the shared prompt prefix, which checkpointing
    turns off (dropout off there: the prefix's own pass draws random numbers the per-row path does not)."""
    base = [f"method={method}", f"train.backbone={backbone}", "prompt.num_virtual_tokens=6"]
    per_row = [*base, "lora.dropout=0.1", "train.share_prompt_prefix=off"]  # dropout in LoRA and the domain head
    off, on = _step(tiny_config(synth_dir, *per_row)), _step(tiny_config(synth_dir, *per_row, CHECKPOINTING))
    assert checkpointed_layers(off[3].lm) == 0 and checkpointed_layers(on[3].lm) >= 2  # tiny-random: 2 layers
    assert off[2] == 0 and on[2] > 0  # the layers really were recomputed in the backward pass
    assert set(on[0]) == ({"lm_loss", "domain_loss"} if method == "prada" else {"lm_loss"})
    if backbone == "lora":
        assert all("lora_" in n or n.startswith(("prompt.", "adversary.")) for n in on[1])
    _assert_same(on, off)
    if method == "prada":
        plain = [*base, "lora.dropout=0", "adversary.head=linear"]
        shared, on = _step(tiny_config(synth_dir, *plain)), _step(tiny_config(synth_dir, *plain, CHECKPOINTING))
        assert shared[3].share_prompt_prefix and not on[3].share_prompt_prefix  # auto on the CPU: on, then off
        _assert_same(on, shared)


def test_lora_adapters_go_only_to_the_named_modules(synth_dir):
    def adapted(*overrides):
        student, _ = build_student(tiny_config(synth_dir, "method=ft-cot", "train.backbone=lora", *overrides), 3)
        return {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in student.lm.named_parameters() if ".lora_A" in n}

    assert adapted("lora.target_modules=[q_proj, v_proj]") == {"q_proj", "v_proj"}
    every = adapted()  # all-linear, the default
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= every
    assert "lm_head" not in every


def test_a_lora_target_no_module_has_is_an_error_naming_the_key(synth_dir):
    cfg = tiny_config(synth_dir, "method=ft-cot", "train.backbone=lora", "lora.target_modules=[q_proj, qkv]")
    with pytest.raises(ConfigError, match=r"^lora\.target_modules: qkv matches no module .* q_proj"):
        build_student(cfg, 3)
    cfg = tiny_config(synth_dir, "method=ft-cot", "train.backbone=lora", "lora.target_modules=[input_layernorm]")
    with pytest.raises(ConfigError, match=r"^lora\.target_modules: input_layernorm names LlamaRMSNorm modules"):
        build_student(cfg, 3)
