"""Loading student weights and tokenizers: any Hugging Face id or local path, with one clear error each.

The offline aliases (`smollm2-135m`, `tiny-random`) live below the stages, in prada/model_aliases.py.
"""

from __future__ import annotations

from pathlib import Path

from prada.errors import PradaError


def _from_pretrained(load, path: str, what: str, **kwargs):
    """`load(path, **kwargs)` with one clear error for a missing folder, a folder that is not a model, or a hub miss.

    transformers raises OSError (not found, offline) or ValueError (no usable tokenizer files) with
    messages about its own internals; the user needs the key, the path and what to give instead.
    """
    local = Path(path).expanduser()
    if local.exists() and not (local / "config.json").exists() and not (local / "adapter_config.json").exists():
        raise PradaError(
            f"student.model={path!r}: a folder without config.json is not a model folder; give a "
            "Hugging Face model folder (config.json, safetensors weights, tokenizer files) or a hub id"
        )
    if not local.exists() and path.startswith(("/", "./", "../", "~")):
        raise PradaError(f"student.model={path!r}: no such folder")
    try:
        return load(path, **kwargs)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PradaError(
            f"student.model={path!r}: cannot load its {what} ({first}). Give a local folder with "
            "safetensors weights and tokenizer files, or a hub id reachable from this machine "
            "(offline, only the aliases smollm2-135m and tiny-random work)."
        ) from None


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = _from_pretrained(AutoTokenizer.from_pretrained, path, "tokenizer", trust_remote_code=trust_remote_code)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # labels are built explicitly, so pad == EOS is harmless
    return tok


def load_causal_lm(path: str, trust_remote_code: bool = False):
    """fp32 weights (autocast handles bf16), safetensors only, SDPA attention where the architecture has it."""
    from prada.hf_compat import load_causal_lm_weights

    return _from_pretrained(load_causal_lm_weights, path, "weights", trust_remote_code=trust_remote_code)


def lora_target_modules(lm, names: list[str]) -> str | list[str]:
    """`lora.target_modules` as peft's LoraConfig takes it: "all-linear", or the names, each checked against the
    model's modules the way peft matches a list (a module's dotted name equals it or ends with "." + it) and
    against the layer types LoRA adapts (linear, embedding, convolution)."""
    from torch import nn

    from prada.errors import ConfigError

    if names == ["all-linear"]:
        return "all-linear"
    modules = [(n, m) for n, m in lm.named_modules() if n]
    for target in names:
        matched = [m for n, m in modules if n == target or n.endswith("." + target)]
        if not matched:
            leaves = sorted({n.rsplit(".", 1)[-1] for n, m in modules if not list(m.children())})
            raise ConfigError(
                f"lora.target_modules: {target} matches no module of this student; "
                f"its leaf module names are {', '.join(leaves)} (or use all-linear)"
            )
        layer = lambda m: isinstance(m, (nn.Linear, nn.Embedding, nn.Conv1d, nn.Conv2d)) or type(m).__name__ == "Conv1D"
        if not all(layer(m) for m in matched):  # Conv1D: GPT-2's linear layers (transformers.pytorch_utils)
            kinds = sorted({type(m).__name__ for m in matched if not layer(m)})
            raise ConfigError(
                f"lora.target_modules: {target} names {', '.join(kinds)} modules; LoRA adapts linear, embedding "
                "and convolution layers"
            )
    return list(names)


def enable_gradient_checkpointing(lm, model: str) -> None:
    """`train.gradient_checkpointing`: transformers' non-reentrant checkpointing of every decoder layer. Non-reentrant,
    so a frozen backbone (LoRA, prompt methods) needs no `enable_input_require_grads` for gradients to reach the
    inputs; it is active in training mode only (held-out figures and evaluation run the layers as usual)."""
    from prada.errors import ConfigError
    from prada.hf_compat import enable_activation_checkpointing

    if not getattr(lm, "supports_gradient_checkpointing", False):
        raise ConfigError(f"train.gradient_checkpointing: {model} does not support it in transformers; set it to false")
    enable_activation_checkpointing(lm)
