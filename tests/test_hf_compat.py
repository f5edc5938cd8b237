"""prada.hf_compat: the one module that touches transformers internals, and the floor it declares."""

import re
from pathlib import Path

import pytest
import torch

from prada import hf_compat
from prada.model_aliases import resolve_model
from prada.train.backbones import load_causal_lm

SRC = Path(hf_compat.__file__).parent
REPO = SRC.parents[1]
INTERNALS = (
    "DynamicCache",
    "past_key_values",
    "ddp_cache_data",
    ".layers]",
    "in cache.layers",
    "attn_implementation",
    "TokenizersBackend",
)


def test_no_other_module_touches_transformers_internals():
    offenders = [
        f"{path.relative_to(SRC)}: {name}"
        for path in SRC.rglob("*.py")
        if path.name != "hf_compat.py"
        for name in INTERNALS
        if name in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_the_floor_is_pyprojects_and_installed():
    pyproject = (REPO / "pyproject.toml").read_text()
    floor = re.search(r'"transformers>=([0-9.]+)', pyproject).group(1)
    assert floor == hf_compat.TRANSFORMERS_FLOOR
    assert hf_compat.is_transformers_ge(hf_compat.TRANSFORMERS_FLOOR)


def test_cache_round_trip_through_a_model_call():
    lm = load_causal_lm(resolve_model("tiny-random")).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        filled = hf_compat.new_cache(lm.config)
        lm(input_ids=ids, use_cache=True, **{hf_compat.cache_keyword(lm): filled})
        layers = hf_compat.cache_layers(filled)
        assert len(layers) == lm.config.num_hidden_layers and layers[0][0].shape[2] == 4
        # the next token through a rebuilt cache equals the full pass's last position
        cache = hf_compat.new_cache(lm.config, [(k.clone(), v.clone()) for k, v in layers])
        step = lm(
            input_ids=torch.tensor([[9]]),
            attention_mask=torch.ones(1, 5, dtype=torch.long),
            use_cache=True,
            **{hf_compat.cache_keyword(lm): cache},
        )
        full = lm(input_ids=torch.tensor([[5, 6, 7, 8, 9]]))
    assert torch.allclose(step.logits[:, -1], full.logits[:, -1], atol=1e-5)
    assert all(k is None or k.numel() == 0 for k, _ in hf_compat.cache_layers(hf_compat.new_cache(lm.config)))


def test_legacy_rope_fields_translate_transformers_5_rope_parameters_to_4x_keys():
    flat = {"rope_parameters": {"rope_theta": 1e5, "rope_type": "default"}}
    assert hf_compat.legacy_rope_fields(flat) == {"rope_theta": 1e5}
    yarn = {"rope_parameters": {"rope_theta": 1e6, "rope_type": "yarn", "factor": 4.0, "partial_rotary_factor": 0.5}}
    assert hf_compat.legacy_rope_fields(yarn) == {
        "rope_theta": 1e6,
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0},
        "partial_rotary_factor": 0.5,
    }
    gemma = {
        "rope_parameters": {
            "full_attention": {"rope_theta": 1e6, "rope_type": "linear", "factor": 8.0},
            "sliding_attention": {"rope_theta": 1e4, "rope_type": "default"},
        }
    }
    assert hf_compat.legacy_rope_fields(gemma) == {
        "rope_theta": 1e6,
        "rope_scaling": {"rope_type": "linear", "factor": 8.0},
        "rope_local_base_freq": 1e4,
    }
    assert hf_compat.legacy_rope_fields({**flat, "rope_theta": 1e5}) == {}  # already there: nothing to add
    assert hf_compat.legacy_rope_fields({"vocab_size": 3}) == {}
    with pytest.raises(ValueError, match="no known transformers 4.x form"):
        hf_compat.legacy_rope_fields({"rope_parameters": {"main": {"rope_theta": 1.0}, "other": {}}})
