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
    """`tokenizer.save_pretrained(folder)`, loadable by transformers 4.x too.

    transformers 5 writes `"tokenizer_class": "TokenizersBackend"`, a class 4.x cannot import; every
    fast tokenizer is a `PreTrainedTokenizerFast` over tokenizer.json, so the file names that instead.
    """
    import json

    from prada.io import atomic_write_json

    tokenizer.save_pretrained(str(folder))
    path = Path(folder) / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if config.get("tokenizer_class") == "TokenizersBackend" and (Path(folder) / "tokenizer.json").exists():
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        atomic_write_json(path, config)
