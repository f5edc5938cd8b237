"""Target-domain answers and rationales never reach a loss: poisoning them changes nothing."""

import json
import shutil

import torch
from safetensors.torch import load_file
from tiny import tiny_config

from prada.distill.dataset import load_distillation_set
from prada.train.loop import train


def test_target_labels_are_blanked(synth_dir):
    data = load_distillation_set(tiny_config(synth_dir).data)
    assert data.target_domains == ["other"] and data.target_questions
    assert all(e.answer == "" and e.rationales == [] for e in data.target_questions)
    assert all(e.domain not in data.target_domains for e in data.source_train)


def test_poisoned_target_labels_give_identical_weights(synth_dir, tmp_path):
    poisoned = tmp_path / "poisoned"
    shutil.copytree(synth_dir, poisoned)
    for ds in ("synth_tracking",):  # a target-domain dataset in tiny.yaml
        path = poisoned / ds / "train.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for r in rows:  # every label wrong (another valid choice: an invalid gold is refused at load)
            wrong = next(c for c in r["choices"] if c != r["answer"])
            r["answer"] = wrong
            r["rationales"] = [{"text": "garbage " * 40, "answer": wrong, "correct": True, "teacher": "x"}]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = []
    for name, folder in (("clean", synth_dir), ("poisoned", poisoned)):
        cfg = tiny_config(folder, "method=prada", "train.max_steps=4")
        runs.append(train(cfg, tmp_path / "runs" / name, progress=False))  # not into the data folder itself
    for f in ("model/model.safetensors", "prompt/adapter_model.safetensors", "domain_head.safetensors"):
        a, b = load_file(str(runs[0] / f)), load_file(str(runs[1] / f))
        assert all(torch.equal(a[k], b[k]) for k in a), f
