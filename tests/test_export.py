"""`prada export`: the shipped folder, loaded as its model card says without prada, generates `prada eval`'s text."""

import json
import re
import stat
import subprocess
import sys

import pytest
import torch

from prada.evaluation.evaluate import evaluate_run
from prada.export import export_run
from prada.run_dir import weights_fingerprint
from prada.train.loop import train

QUESTIONS_TO_TEXTS = """
import json, sys
questions = json.loads(sys.argv[1])
print(json.dumps([generate(q) for q in questions]))
assert not any(m == "prada" or m.startswith("prada.") for m in sys.modules), "the recipe must not need prada"
"""


def _run(counting_model, counting_data, tmp_path, method, *overrides):
    from tiny import tiny_config

    cfg = tiny_config(
        counting_data,
        f"method={method}",
        f"student.model={counting_model}",
        "data.benchmark=none",
        "data.datasets=[]",
        "data.target_domains=[other]",
        "data.max_test_per_dataset=6",
        "train.max_steps=3",
        "train.lr=1e-4",
        "train.save_every=0",
        "eval.max_new_tokens=64",
        *overrides,
    )
    run = train(cfg, tmp_path / method, progress=False)
    evaluate_run(run, progress=False)
    return run


def _card_recipe(export):
    """The first python block under "## Load it" of the model card, pointed at the export."""
    card = (export / "README.md").read_text()
    block = re.search(r"## Load it.*?```python\n(.*?)```", card, re.S).group(1)
    return block.replace("path/to/this/folder", str(export))


def _recipe_texts(export, questions):
    code = _card_recipe(export) + QUESTIONS_TO_TEXTS
    r = subprocess.run([sys.executable, "-c", code, json.dumps(questions)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", ["prada", "ft-cot"])
def test_the_model_cards_recipe_generates_prada_evals_text(method, counting_model, counting_data, tmp_path):
    run = _run(counting_model, counting_data, tmp_path, method)
    export = export_run(run, tmp_path / "export")
    predictions = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 12
    texts = [p["output"] for p in predictions]
    assert len(set(texts)) >= 10 and min(map(len, texts)) >= 8  # the comparison can fail
    assert _recipe_texts(export, [p["question"] for p in predictions]) == texts
    recipe = _card_recipe(export)
    assert ("PeftModel" in recipe) == (method == "prada")

    card = (export / "README.md").read_text()
    assert f"# {method} student" in card and "`{question} ###`" in card and "-->" in card
    for key, d in json.loads((run / "eval.json").read_text())["datasets"].items():
        assert f"| {key} | {d['domain']} | {d['n']} | {d['accuracy']:.1f} |" in card
    assert "`rule`" in card  # the teacher of the training rationales
    meta = json.loads((export / "prada.json").read_text())
    assert meta["method"] == method and meta["prompt_format"] == "{question} ###"
    assert meta["run_weights"] == weights_fingerprint(run)  # the run weights it came from
    if method == "prada":
        adapter = json.loads((export / "prompt" / "adapter_config.json").read_text())
        assert adapter["base_model_name_or_path"] == ".." and adapter["peft_type"] == "P_TUNING"
    else:
        assert not (export / "prompt").exists()


def test_export_folder_is_plain_readable_and_refuses_to_overwrite(counting_model, counting_data, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = _run(counting_model, counting_data, tmp_path, "ptune")
    export = export_run(run, tmp_path / "bf16", dtype="bf16")
    model = AutoModelForCausalLM.from_pretrained(export, dtype="auto")
    assert model.dtype == torch.bfloat16 and model.config.use_cache
    tok = AutoTokenizer.from_pretrained(export)
    # the chat template is the training format, nothing else
    chat = tok.apply_chat_template([{"role": "user", "content": " kq "}], tokenize=False, add_generation_prompt=True)
    assert chat == "kq ###"
    assert json.loads((export / "tokenizer_config.json").read_text())["tokenizer_class"] != "TokenizersBackend"
    for path in export.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path  # readable by group and others
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no build folder left
    from prada.errors import PradaError

    with pytest.raises(PradaError, match="not empty"):
        export_run(run, export)


def test_run_folder_prompt_adapter_names_the_trained_weights(counting_model, counting_data, tmp_path):
    """prompt/adapter_config.json's base is the run's own trained model/ (relative), never the untrained base."""
    run = _run(counting_model, counting_data, tmp_path, "ptune")
    adapter = json.loads((run / "prompt" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "../model"
    assert stat.S_IMODE((run / "model" / "model.safetensors").stat().st_mode) & 0o044 == 0o044


def _peft_and_prada(counting_model, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prada.evaluation.generate import generate_texts
    from prada.methods.prompt import ContinuousPrompt, FrozenPrompt
    from prada.train.student import Student

    torch.manual_seed(0)
    ContinuousPrompt(64, 4, "mlp", 32).save_peft_adapter(tmp_path / "prompt", str(counting_model))
    tok = AutoTokenizer.from_pretrained(counting_model)
    embeddings = load_file(str(tmp_path / "prompt" / "adapter_model.safetensors"))["prompt_embeddings"]
    lm = AutoModelForCausalLM.from_pretrained(counting_model).eval()
    questions = ["a ###", "kq ###", "t ###", "mb ###"]
    ours = generate_texts(Student(lm, FrozenPrompt(embeddings)), tok, questions, 64, 4)
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(counting_model), tmp_path / "prompt")
    return peft_model.eval(), tok, questions, ours


def _peft_generate(model, tok, question, **kwargs):
    inputs = tok(question, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=64, do_sample=False, pad_token_id=tok.pad_token_id, **kwargs)
    return tok.decode(out[0, inputs.input_ids.shape[1] :], skip_special_tokens=True)


def test_peft_generate_without_cache_equals_prada(counting_model, tmp_path):
    model, tok, questions, ours = _peft_and_prada(counting_model, tmp_path)
    assert len(set(ours)) == len(ours) and min(map(len, ours)) >= 8
    assert [_peft_generate(model, tok, q, use_cache=False) for q in questions] == ours


@pytest.mark.xfail(
    strict=True,
    reason="transformers 5.x passes the KV cache as `cache`; peft <= 0.21.2 looks for `past_key_values`, finds "
    "none and re-inserts the virtual prompt at every step. When this passes, the model card can use generate().",
)
def test_peft_generate_with_cache_equals_prada(counting_model, tmp_path):
    model, tok, questions, ours = _peft_and_prada(counting_model, tmp_path)
    assert [_peft_generate(model, tok, q) for q in questions] == ours
