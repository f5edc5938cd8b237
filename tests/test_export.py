"""`prada export`: the shipped folder, loaded as its model card says without prada, generates `prada eval`'s text."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

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


# --- the floor and the ceiling: transformers 4.57.x and 5.x load the export as one model --------------

TF4_PYTHON = os.environ.get("PRADA_TEST_TF4_PYTHON", "")
"""An interpreter with transformers 4.57.x (+ torch, safetensors), e.g. a second venv, for the floor's tests."""

PROBE = """
import json, sys
import torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

folder, questions, score = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder).eval()
out = {"version": transformers.__version__, "ids": [], "logits": []}
for question in questions:  # the plainest use: chat template, tokenizer(...), generate(**inputs)
    text = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
    inputs = tok(text, return_tensors="pt")
    out["ids"].append(model.generate(**inputs)[0].tolist())
with torch.no_grad():  # teacher-forced logits on the sequences given (the same on both sides)
    out["logits"] = [model(torch.tensor([ids])).logits[0].tolist() for ids in score]
print(json.dumps(out))
"""


def _probe(python, folder, questions, score=()):
    r = subprocess.run(
        [python, "-c", PROBE, str(folder), json.dumps(questions), json.dumps(list(score))],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""},  # plain transformers, no prada sources
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def rope_export(counting_model, counting_data, tmp_path_factory):
    """An ft-cot export of the counting student with rope_theta 100000 (not 4.x's default 10000, so a
    config that 4.x reads without the theta gives a different model), and prada eval's predictions."""
    tmp = tmp_path_factory.mktemp("rope")
    model = tmp / "counting-rope"
    shutil.copytree(counting_model, model)
    config = json.loads((model / "config.json").read_text())
    config["rope_parameters"] = {**config["rope_parameters"], "rope_theta": 100000.0}
    (model / "config.json").write_text(json.dumps(config))
    run = _run(model, counting_data, tmp, "ft-cot")
    predictions = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    return export_run(run, tmp / "export"), predictions


def test_export_config_names_the_rope_theta_for_transformers_4(rope_export):
    export, _ = rope_export
    config = json.loads((export / "config.json").read_text())
    assert config["rope_parameters"]["rope_theta"] == config["rope_theta"] == 100000.0
    assert "rope_scaling" not in config  # default rope: 4.x wants none
    tokenizer_config = json.loads((export / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_input_names"] == ["input_ids", "attention_mask"]


def test_export_generates_prada_evals_text_under_transformers_5_with_plain_generate(rope_export):
    from transformers import AutoTokenizer

    export, predictions = rope_export
    texts = [p["output"] for p in predictions]
    assert len(set(texts)) >= 8 and min(map(len, texts)) >= 8  # the comparison can fail
    ours = _probe(sys.executable, export, [p["question"] for p in predictions])
    tok = AutoTokenizer.from_pretrained(export)
    prompt_lengths = [len(tok(f"{p['question'].strip()} ###")["input_ids"]) for p in predictions]
    decoded = [tok.decode(ids[n:], skip_special_tokens=True) for ids, n in zip(ours["ids"], prompt_lengths)]
    assert decoded == texts


@pytest.mark.skipif(
    not TF4_PYTHON,
    reason="set PRADA_TEST_TF4_PYTHON to a python with transformers 4.57.x, torch and safetensors "
    "(e.g. python3 -m venv v && v/bin/pip install torch 'transformers==4.57.*' safetensors) to test the floor",
)
def test_export_is_the_same_model_under_transformers_4_57_and_5(rope_export):
    export, predictions = rope_export
    questions = [p["question"] for p in predictions]
    ceiling = _probe(sys.executable, export, questions)
    ceiling = _probe(sys.executable, export, questions, ceiling["ids"])
    floor = _probe(TF4_PYTHON, export, questions, ceiling["ids"])
    assert floor["version"].startswith("4.57.") and ceiling["version"].startswith("5.")
    assert len({tuple(ids) for ids in ceiling["ids"]}) >= 8
    assert floor["ids"] == ceiling["ids"]  # generate(**tokenizer(...)) runs under 4.57 and gives the same tokens
    diff = max(
        (torch.tensor(a) - torch.tensor(b)).abs().max().item() for a, b in zip(floor["logits"], ceiling["logits"])
    )
    assert diff < 1e-4, diff


@pytest.mark.skipif(not TF4_PYTHON, reason="set PRADA_TEST_TF4_PYTHON (see the test above)")
def test_scaled_rope_reads_the_same_under_transformers_4_57(tmp_path):
    """llama3-scaled rope (rope_scaling in 4.x, inside rope_parameters in 5.x): the same logits on both sides."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from prada.hf_compat import save_config_for_4x, save_tokenizer
    from prada.model_aliases import build_byte_tokenizer

    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}
    scaling["original_max_position_embeddings"] = 16
    config = LlamaConfig(
        vocab_size=257, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, rope_parameters={"rope_theta": 500000.0, **scaling},
        initializer_range=0.5,  # large random weights: attention, so rope, moves the logits visibly
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(tmp_path))
    save_tokenizer(build_byte_tokenizer(), tmp_path)
    extra = save_config_for_4x(tmp_path)
    assert extra == {"rope_theta": 500000.0, "rope_scaling": scaling}
    sequence = [list(range(40, 100))]
    ceiling = _probe(sys.executable, tmp_path, [], sequence)
    floor = _probe(TF4_PYTHON, tmp_path, [], sequence)
    assert (torch.tensor(floor["logits"]) - torch.tensor(ceiling["logits"])).abs().max().item() < 1e-4
    # the check can fail: 4.x's default rope (no keys written) is another model
    config = json.loads((tmp_path / "config.json").read_text())
    for key in extra:
        del config[key]
    (tmp_path / "config.json").write_text(json.dumps(config))
    default = _probe(TF4_PYTHON, tmp_path, [], sequence)
    assert (torch.tensor(default["logits"]) - torch.tensor(ceiling["logits"])).abs().max().item() > 1e-2


# --- prompt methods without peft: plain/ holds the virtual prompt as added tokens ----------------------


@pytest.fixture(scope="module")
def ptune_export(counting_model, counting_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plain")
    run = _run(counting_model, counting_data, tmp, "ptune")
    predictions = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    return run, export_run(run, tmp / "export"), predictions


def _plain_recipe(export):
    card = (export / "README.md").read_text()
    block = re.search(r"### transformers alone.*?```python\n(.*?)```", card, re.S).group(1)
    return block.replace("path/to/this/folder", str(export))


PLAIN_CHAT = """
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer

folder, questions = sys.argv[1], json.loads(sys.argv[2])
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder).eval()
texts = []
for question in questions:  # chat template -> tokenizer -> generate(**inputs): no prefix handling of our own
    chat = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
    inputs = tok(chat, add_special_tokens=False, return_tensors="pt")
    texts.append(tok.decode(model.generate(**inputs)[0, inputs.input_ids.shape[1] :], skip_special_tokens=True))
print(json.dumps(texts))
"""


def _plain_chat_texts(python, folder, questions):
    r = subprocess.run(
        [python, "-c", PLAIN_CHAT, str(folder), json.dumps(questions)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_plain_checkpoint_of_a_prompt_export_generates_prada_evals_text_without_peft(ptune_export):
    run, export, predictions = ptune_export
    texts = [p["output"] for p in predictions]
    assert len(set(texts)) >= 8 and min(map(len, texts)) >= 8  # the comparison can fail
    questions = [p["question"] for p in predictions]
    code = _plain_recipe(export) + QUESTIONS_TO_TEXTS.replace("prada", "peft")  # neither prada nor peft
    r = subprocess.run([sys.executable, "-c", code, json.dumps(questions)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == texts
    assert _plain_chat_texts(sys.executable, export / "plain", questions) == texts

    meta = json.loads((export / "prada.json").read_text())
    prefix = "".join(f"<prada_prompt_{i}>" for i in range(meta["num_virtual_tokens"]))
    assert meta["plain_prefix"] == prefix and meta["num_virtual_tokens"] > 0
    config = json.loads((export / "plain" / "config.json").read_text())
    generation = json.loads((export / "plain" / "generation_config.json").read_text())
    assert config["tie_word_embeddings"] is False and len(generation["suppress_tokens"]) == meta["num_virtual_tokens"]
    assert not (export / "plain" / "adapter_config.json").exists()


@pytest.mark.skipif(not TF4_PYTHON, reason="set PRADA_TEST_TF4_PYTHON (see the tests above)")
def test_plain_checkpoint_generates_prada_evals_text_under_transformers_4_57(ptune_export):
    _, export, predictions = ptune_export
    texts = _plain_chat_texts(TF4_PYTHON, export / "plain", [p["question"] for p in predictions])
    assert texts == [p["output"] for p in predictions]


def test_export_writes_lm_eval_tasks_over_the_runs_test_items(ptune_export):
    import yaml

    run, export, predictions = ptune_export
    tasks = export / "lm_eval"
    meta = json.loads((export / "prada.json").read_text())
    template = (tasks / "_prada_template.yaml").read_text()
    template = yaml.safe_load(template.replace("!function ", ""))
    assert template["doc_to_text"] == meta["plain_prefix"] + "{{question | trim}} ###"
    assert template["generation_kwargs"]["max_gen_toks"] == meta["max_new_tokens"]
    group = yaml.safe_load((tasks / "prada_export.yaml").read_text())
    assert group["task"] == ["prada_export_counting", "prada_export_counting_other"]
    for key in ("counting", "counting_other"):
        task = yaml.safe_load((tasks / f"prada_export_{key}.yaml").read_text())
        rows = [json.loads(line) for line in (export / task["dataset_kwargs"]["data_files"]["test"]).open()]
        assert [r["question"] for r in rows] == [p["question"] for p in predictions if p["dataset"] == key]
    assert (
        "lm_eval --model hf --model_args pretrained=plain --include_path lm_eval" in (export / "README.md").read_text()
    )


LM_EVAL_PYTHON = os.environ.get("PRADA_TEST_LM_EVAL_PYTHON", "")
"""An interpreter with lm-eval-harness (`pip install lm_eval transformers accelerate`), for the offline run below."""


@pytest.mark.slow
@pytest.mark.skipif(
    not LM_EVAL_PYTHON,
    reason="set PRADA_TEST_LM_EVAL_PYTHON to a python with lm_eval (0.4.x) and transformers to run the export's tasks",
)
def test_lm_eval_scores_the_plain_checkpoint_as_prada_eval_does(ptune_export, tmp_path):
    run, export, predictions = ptune_export
    src = str(Path(__file__).resolve().parents[1] / "src")  # utils.py scores with prada's rules
    command = [LM_EVAL_PYTHON, "-m", "lm_eval", "--model", "hf", "--model_args", "pretrained=plain"]
    command += ["--include_path", "lm_eval", "--tasks", "prada_export", "--batch_size", "1"]
    command += ["--log_samples", "--output_path", str(tmp_path / "out")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": src}
    r = subprocess.run(command, cwd=export, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())["results"]
    ours = json.loads((run / "eval.json").read_text())["datasets"]
    for key, d in ours.items():
        assert results[f"prada_export_{key}"]["acc,none"] * 100 == pytest.approx(d["accuracy"])
    outputs = {(p["dataset"], p["question"]): p["output"] for p in predictions}
    samples = 0
    for path in (tmp_path / "out").rglob("samples_prada_export_*.jsonl"):
        key = re.match(r"samples_prada_export_(.+)_\d{4}-", path.name).group(1)
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            assert sample["resps"][0][0] == outputs[(key, sample["doc"]["question"])]
            samples += 1
    assert samples == len(predictions)


def test_model_card_metadata_reads_back_with_huggingface_hub(ptune_export):
    from huggingface_hub import ModelCard

    run, export, _ = ptune_export
    card = ModelCard.load(export / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation"
    assert {"prada", "ptune"} <= set(card.data.tags)
    ours = json.loads((run / "eval.json").read_text())["datasets"]
    got = {r.dataset_name: r.metric_value for r in card.data.eval_results}
    assert got == {k: round(d["accuracy"], 2) for k, d in ours.items()}
    assert card.data.base_model is None  # a local student folder is no hub base model
