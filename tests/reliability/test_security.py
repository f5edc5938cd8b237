"""Security: weights load from safetensors only, nothing unpickles or evaluates untrusted bytes, remote code stays off
unless asked for, and the API key never leaves the process except in the Authorization header.

Download integrity (sha256 pinning, tampered files refused, nothing cached) is tested in tests/data/test_download.py
(`test_corrupted_download_raises_and_leaves_nothing`, `test_corrupted_cache_entry_is_fetched_again`,
`test_missing_file_and_local_paths`) and tests/data/test_ftcot12.py (`test_every_source_file_is_pinned`).
"""

from __future__ import annotations

import ast
import json
import os
import pickle
from pathlib import Path

import pytest
import yaml
from reliability.harness import TEACHER, Forked, Subprocess, make_teach_data
from teacher.fake_openai import FakeOpenAI

SRC = Path(__file__).resolve().parents[2] / "src" / "prada"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CANARY = "sk-canary-5f0c9e1d7b2a4e86-NEVER-LOG"
MODEL_CLASSES = ("AutoModel", "AutoModelForCausalLM", "LlamaForCausalLM", "PreTrainedModel")
# Known, reported, not fixed here: the local HF teacher loads weights without use_safetensors=True.
KNOWN = {("teacher/client.py", "from_pretrained without use_safetensors=True")}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return ""


def _kw(call: ast.Call, key: str):
    for k in call.keywords:
        if k.arg == key:
            return k.value
    return None


def scan_source() -> list[tuple[str, str, int]]:
    """(file, problem, line) for every unsafe load or evaluation in src/prada."""
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        rel = str(path.relative_to(SRC))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] + (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                )
                if any(m.split(".")[0] in ("pickle", "cPickle", "dill", "marshal", "joblib", "shelve") for m in mods):
                    problems.append((rel, f"imports {mods}", node.lineno))
        for call in _calls(tree):
            name = _name(call.func)
            last = name.rsplit(".", 1)[-1]
            if name in ("eval", "exec", "builtins.eval", "builtins.exec"):
                problems.append((rel, f"calls {name}", call.lineno))
            if name == "torch.load" or (last == "load" and name.startswith("torch")):
                wo = _kw(call, "weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    problems.append((rel, "torch.load without weights_only=True", call.lineno))
            if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all"):
                problems.append((rel, f"calls {name} (use yaml.safe_load)", call.lineno))
            if last == "from_pretrained" and name.split(".")[0] in MODEL_CLASSES and _kw(call, "gguf_file") is None:
                st = _kw(call, "use_safetensors")
                if not (isinstance(st, ast.Constant) and st.value is True):
                    problems.append((rel, "from_pretrained without use_safetensors=True", call.lineno))
            trc = _kw(call, "trust_remote_code")
            if isinstance(trc, ast.Constant) and trc.value is True:
                problems.append((rel, "trust_remote_code=True hard-coded", call.lineno))
    return problems


def test_source_never_unpickles_evaluates_or_loads_non_safetensors_weights():
    problems = [p for p in scan_source() if (p[0], p[1]) not in KNOWN]
    assert problems == [], problems
    # The scan sees the calls it is meant to police.
    assert "use_safetensors=True" in (SRC / "hf_compat.py").read_text()  # the student loader (issue 14: moved)
    assert "trust_remote_code=trust_remote_code" in (SRC / "train" / "backbones.py").read_text()
    assert "weights_only=True" in (SRC / "train" / "checkpoint.py").read_text()


def test_local_hf_teacher_loads_safetensors_only():
    assert [p for p in scan_source() if (p[0], p[1]) in KNOWN] == []


class _Evil:
    """A pickle that creates a marker file when unpickled: proof that untrusted bytes ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_weights_are_refused_without_being_unpickled(tmp_path):
    from prada.errors import PradaError
    from prada.model_aliases import build_tiny_random
    from prada.train.backbones import load_causal_lm

    model = build_tiny_random(tmp_path / "model", hidden_size=16, layers=1)
    (model / "model.safetensors").unlink()
    marker = tmp_path / "evaluated"
    (model / "pytorch_model.bin").write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(PradaError, match="safetensors"):
        load_causal_lm(str(model))
    assert not marker.exists()


def test_tampered_checkpoint_state_is_not_unpickled(tmp_path):
    import torch

    from prada.train.checkpoint import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path, model, opt, 3)
    marker = tmp_path / "evaluated"
    (tmp_path / "checkpoint" / "state.pt").write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(Exception):  # noqa: B017 - refused by torch's weights_only unpickler (see docs for the message)
        load_checkpoint(tmp_path / "checkpoint", model, opt)
    assert not marker.exists()


def test_trust_remote_code_defaults_off_and_is_passed_through(monkeypatch, tmp_path):
    import transformers

    from prada.config import RunConfig, load_config
    from prada.train import backbones, student

    assert RunConfig().student.trust_remote_code is False

    def flags(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "trust_remote_code" or str(k).endswith(".trust_remote_code"):
                    yield v
                yield from flags(v)
        elif isinstance(node, list):
            for v in node:
                yield from flags(v)

    for cfg_file in sorted(CONFIGS.glob("*.yaml")):  # run configs and experiment configs alike
        assert all(v is False for v in flags(yaml.safe_load(cfg_file.read_text()))), cfg_file

    seen = []

    class Stop(Exception):
        pass

    def spy(path, trust_remote_code=False):
        seen.append(trust_remote_code)
        raise Stop

    monkeypatch.setattr(student, "load_tokenizer", spy)
    monkeypatch.setattr(student, "resolve_model", lambda name: name)
    for flag in (False, True):
        with pytest.raises(Stop):
            student.build_student(
                load_config(None, [f"student.trust_remote_code={flag}", "student.model=some/model"]), 2
            )
    assert seen == [False, True]

    kwargs = {}

    def from_pretrained(path, **kw):
        kwargs.update(kw)
        raise Stop

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    for flag in (False, True):
        with pytest.raises(Stop):
            backbones.load_causal_lm("some/model", flag)
        assert kwargs["trust_remote_code"] is flag and kwargs["use_safetensors"] is True


def test_api_key_never_reaches_logs_configs_or_outputs(tmp_path):
    """teach (fake server) -> train -> eval with OPENAI_API_KEY set to a canary; grep everything written and printed."""
    env = {"OPENAI_API_KEY": CANARY}
    data = make_teach_data(tmp_path / "data")
    log = tmp_path / "output.log"
    with FakeOpenAI() as srv:
        assert (
            Subprocess(
                ["teach", "--data", str(data), "--teacher", TEACHER], log, {**env, "OPENAI_BASE_URL": srv.url}
            ).wait(120)
            == 0
        )
        with FakeOpenAI(status=401) as bad:  # the error path too: a rejected key must not be echoed
            code = Subprocess(
                ["teach", "--data", str(data), "--teacher", "openai:other-model"],
                log,
                {**env, "OPENAI_BASE_URL": bad.url},
            ).wait(120)
    assert code == 2
    assert srv.auth_headers == {f"Bearer {CANARY}"}  # the key was used, so its absence elsewhere means something
    run = tmp_path / "run"
    overrides = [
        f"data.data_dir={data}",
        "data.datasets=[]",
        "data.target_domains=[other]",
        "train.max_steps=2",
        "data.max_test_per_dataset=2",
        "eval.max_new_tokens=8",
    ]
    cfg = tmp_path / "cfg.yaml"
    from prada.config import load_config, save_config

    save_config(load_config(CONFIGS / "tiny.yaml", overrides), cfg)
    assert Forked(["train", "--config", str(cfg), "--out", str(run)], log, env).wait(300) == 0, log.read_text()[-2000:]
    assert Forked(["eval", "--run", str(run)], log, env).wait(300) == 0, log.read_text()[-2000:]
    assert json.loads((run / "eval.json").read_text())["datasets"].keys() == {"arith", "parity", "pick"}

    scanned = 0
    roots = [tmp_path, Path(os.environ["PRADA_CACHE"])]
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file():
                scanned += 1
                assert CANARY.encode() not in p.read_bytes(), p
    assert scanned > 20 and "teacher openai:fake-model" in log.read_text()
