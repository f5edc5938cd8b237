"""Every use of transformers internals, in one module, with named version checks.

The KV-cache format changed twice in transformers during 2025 (per-layer `cache.layers` objects
with `.keys` / `.values`; then the model keyword and output field `past_key_values` renamed to
`cache`), and each change broke peft. Code elsewhere calls these functions, never the internals,
so the next change is one edit here (huggingface/peft src/peft/import_utils.py keeps its checks
the same way). TRANSFORMERS_FLOOR is the oldest release the test suite passed on; pyproject.toml
says the same.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from pathlib import Path

import torch
from packaging.version import Version

TRANSFORMERS_FLOOR = "4.57"
"""Oldest transformers the suite passed on: `from_pretrained(dtype=...)` and `DynamicCache(config=...)`
with `cache.layers` (4.46 fails on `dtype`)."""


@lru_cache
def transformers_version() -> Version:
    import transformers

    return Version(transformers.__version__)


def is_transformers_ge(version: str) -> bool:
    """Whether the installed transformers is at least `version`."""
    return transformers_version() >= Version(version)


KV = list[tuple[torch.Tensor, torch.Tensor]]
"""A KV cache as plain tensors: per layer (keys, values), each (B, kv_heads, T, head_dim)."""


def new_cache(config, layers: KV | None = None):
    """A DynamicCache for a model with `config`, empty or holding `layers`.

    Pass it to the model call (under `cache_keyword`) and read it afterwards: a model's returned cache
    field was renamed (`past_key_values` -> `cache`), and some releases return none in training mode.
    """
    from transformers import DynamicCache

    if layers is None:
        return DynamicCache(config=config)
    return DynamicCache(ddp_cache_data=layers, config=config)


def cache_layers(cache) -> KV:
    """The (keys, values) of every layer of a DynamicCache."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def cache_keyword(lm) -> str:
    """The model's KV-cache argument: `cache` in transformers >= 5.2x, `past_key_values` before.

    Read from the model's forward signature (a release's models may differ); a peft wrapper forwards
    **kwargs, so the name is read from the model it wraps.
    """
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def load_causal_lm_weights(path: str, **kwargs):
    """AutoModelForCausalLM in fp32 from safetensors, with SDPA attention where the architecture has it.

    Models without an SDPA path (e.g. Gemma-2 in some releases) raise a ValueError naming
    scaled_dot_product_attention; they then load with the attention transformers picks for them.
    """
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": "float32", **kwargs}
    try:
        return AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, attn_implementation="sdpa", **kwargs)
    except ValueError as e:
        if "scaled_dot_product_attention" not in str(e):
            raise
        return AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, **kwargs)


def save_tokenizer(tokenizer, folder: str | Path) -> None:
    """`tokenizer.save_pretrained(folder)`, loadable by transformers 4.x too, with the same model inputs.

    transformers 5 writes `"tokenizer_class": "TokenizersBackend"`, a class 4.x cannot import; every
    fast tokenizer is a `PreTrainedTokenizerFast` over tokenizer.json, so the file names that instead.
    4.x's `PreTrainedTokenizerFast` also returns `token_type_ids` unless told otherwise, and a causal
    LM's `generate(**tokenizer(text))` then raises on the unused argument: the file names the inputs
    this tokenizer gives (`model_input_names`), which 4.x reads back.
    """
    import json

    from prada.io import atomic_write_json

    tokenizer.save_pretrained(str(folder))
    path = Path(folder) / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    changed = dict(config)
    if config.get("tokenizer_class") == "TokenizersBackend" and (Path(folder) / "tokenizer.json").exists():
        changed["tokenizer_class"] = "PreTrainedTokenizerFast"
    if path.exists() and "model_input_names" not in config:
        changed["model_input_names"] = list(tokenizer.model_input_names)
    if changed != config:
        atomic_write_json(path, changed)


def legacy_rope_fields(config: dict) -> dict:
    """The top-level rope keys transformers 4.x reads, for a config.json written by transformers 5.

    transformers 5 saves the rotary settings only as `rope_parameters` ({"rope_theta", "rope_type",
    scaling keys}, or one such dict per layer type); 4.x ignores that key and uses its default theta
    (10000), a different model wherever the real theta differs. 5.x reads the old keys back into the
    same `rope_parameters`, so writing both keeps one model under both. Returns only keys `config`
    lacks; {} when there is nothing to translate. Per-layer-type settings are translated in Gemma-3's
    4.x form (`rope_theta` + `rope_scaling` for full attention, `rope_local_base_freq` for sliding
    attention), as transformers 5 reads them; any other nesting raises ValueError.
    """

    def flat(params: dict, theta_key: str, scaling: bool) -> dict:
        out = {theta_key: params["rope_theta"]} if "rope_theta" in params else {}
        rest = {k: v for k, v in params.items() if k not in ("rope_theta", "partial_rotary_factor")}
        if scaling and rest.get("rope_type", "default") != "default":
            out["rope_scaling"] = rest
        if "partial_rotary_factor" in params:
            out["partial_rotary_factor"] = params["partial_rotary_factor"]
        return out

    params = config.get("rope_parameters")
    if not isinstance(params, dict) or not params:
        return {}
    if "rope_theta" in params or "rope_type" in params:
        out = flat(params, "rope_theta", True)
    elif set(params) <= {"full_attention", "sliding_attention"}:
        out = flat(params.get("full_attention") or {}, "rope_theta", True)
        out.update(flat(params.get("sliding_attention") or {}, "rope_local_base_freq", False))
    else:
        raise ValueError(f"rope_parameters nested by {sorted(params)}: no known transformers 4.x form")
    return {k: v for k, v in out.items() if config.get(k) is None}


def save_config_for_4x(folder: str | Path) -> dict:
    """Add to `folder/config.json` the rope keys transformers 4.x reads (see `legacy_rope_fields`); returns them."""
    import json

    from prada.io import atomic_write_json

    path = Path(folder) / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    extra = legacy_rope_fields(config)
    if extra:
        atomic_write_json(path, {**config, **extra})
    return extra


def enable_activation_checkpointing(lm) -> None:
    """Non-reentrant activation (gradient) checkpointing of every decoder layer. transformers 5.2x names it
    `activation_checkpointing_enable` and keeps `gradient_checkpointing_enable` as an alias that warns it goes in v6;
    earlier releases (the 4.57 floor) have only the old name."""
    kwargs = {"use_reentrant": False}
    if hasattr(lm, "activation_checkpointing_enable"):
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def checkpointed_layers(lm) -> int:
    """How many modules of `lm` (a peft wrapper too) run with activation checkpointing on."""
    return sum(bool(getattr(m, "gradient_checkpointing", False)) for m in lm.modules())


def allow_another_mixed_precision(mixed_precision: str) -> None:
    """Let this process start an Accelerator at another mixed precision than an earlier one did (`train()` called
    twice as a library, e.g. benchmarks/loss_curves.py's fp32 and bf16 runs): accelerate keeps one
    AcceleratorState per process and refuses a second precision. Only that state is reset; the process group
    (PartialState) stays, and nothing changes when the precision is the same or no Accelerator exists yet."""
    from accelerate.state import AcceleratorState

    earlier = AcceleratorState._shared_state.get("_mixed_precision")
    if earlier is not None and earlier != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)
