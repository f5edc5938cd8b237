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
