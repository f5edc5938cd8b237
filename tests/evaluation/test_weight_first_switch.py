"""eval.weight_first_linears: on and off decode the same tokens from the same logits, on every device."""

import pytest
import torch

import prada.evaluation.generate as generate
from prada.methods.prompt import FrozenPrompt
from prada.model_aliases import resolve_model
from prada.train.backbones import load_causal_lm, load_tokenizer
from prada.train.student import Student

PROMPTS = ["What is 2 + 3? ###", "A coin is heads up. Is it heads up? ###", "Hi ###"]


def _decode(device: str, switch: str, autocast_dtype=None) -> tuple[list[list[int]], list[torch.Tensor], int]:
    """Greedy tokens, the logits of every model call, and how many linear calls ran weight-first."""
    path = resolve_model("tiny-random")
    lm = load_causal_lm(path).to(device).eval()
    torch.manual_seed(1)
    student = Student(lm, FrozenPrompt(torch.randn(4, lm.config.hidden_size, device=device) * 0.5))
    tok = load_tokenizer(path)
    logits, weight_first_calls = [], []
    forward = lm.forward

    def recording(*args, **kwargs):
        out = forward(*args, **kwargs)
        logits.append(out.logits[:, -1].float().cpu())
        return out

    lm.forward = recording
    real = generate._weight_first

    def counting(module, x):
        weight_first_calls.append(1)
        return real(module, x)

    generate._weight_first = counting
    try:
        tokens = generate.greedy_generate(
            student,
            [tok(p)["input_ids"] for p in PROMPTS],
            tok.eos_token_id,
            tok.pad_token_id,
            max_new_tokens=12,
            device=device,
            autocast_dtype=autocast_dtype,
            weight_first=switch == "on",
        )
    finally:
        generate._weight_first = real
    return tokens, logits, len(weight_first_calls)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_on_and_off_give_the_same_logits_and_tokens(device):
    on_tokens, on_logits, on_calls = _decode(device, "on")
    off_tokens, off_logits, off_calls = _decode(device, "off")
    assert on_calls > 0 and off_calls == 0  # the switch, not the device, picks the path
    assert on_tokens == off_tokens
    assert len(on_logits) == len(off_logits) > 1
    for a, b in zip(on_logits, off_logits):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_auto_is_on_for_a_cpu_model_in_fp32_only():
    """`auto` is resolved once per run (run_dir.resolve_switches) and the decoder takes the boolean."""
    from prada.config import RunConfig
    from prada.run_dir import resolve_switches

    def resolved(device: str, precision: str, setting: str = "auto") -> bool:
        cfg = RunConfig()
        cfg.train.precision, cfg.eval.weight_first_linears = precision, setting
        return resolve_switches(cfg, device)["weight_first_linears"]

    assert resolved("cpu", "fp32") and not resolved("cpu", "bf16") and not resolved("cuda", "fp32")
    assert resolved("cuda", "bf16", "on") and not resolved("cpu", "fp32", "off")
    assert _decode("cpu", "on")[2] > 0  # the resolved boolean picks the path
    assert _decode("cpu", "off", autocast_dtype=torch.bfloat16)[2] == 0
