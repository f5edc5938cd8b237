"""Any Hugging Face causal LM as the student: tiny random models of other families, built in the test."""

import json
import math

import pytest
import torch
import transformers as T
from tiny import tiny_config
from torch import nn

from prada.distill.collate import TrainItem, collate
from prada.evaluation.evaluate import evaluate_run
from prada.model_aliases import build_byte_tokenizer
from prada.train.loop import train
from prada.train.student import Student

SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
FAMILIES = {  # config class, model class, size; the last three change their head's output before it is a logit
    "gpt2": (T.GPT2Config, T.GPT2LMHeadModel, dict(n_embd=32, n_layer=2, n_head=4, n_positions=512)),
    "gpt_neox": (
        T.GPTNeoXConfig,
        T.GPTNeoXForCausalLM,
        dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4),
    ),
    "qwen2": (T.Qwen2Config, T.Qwen2ForCausalLM, dict(SMALL, tie_word_embeddings=True)),
    "gemma2": (
        T.Gemma2Config,
        T.Gemma2ForCausalLM,
        dict(SMALL, head_dim=8, final_logit_softcapping=0.5),
    ),  # no SDPA path
    "cohere": (T.CohereConfig, T.CohereForCausalLM, dict(SMALL, logit_scale=0.0625)),
    "granite": (T.GraniteConfig, T.GraniteForCausalLM, dict(SMALL, logits_scaling=8.0)),
}


def _model(name: str) -> nn.Module:
    tok = build_byte_tokenizer()
    config_class, model_class, size = FAMILIES[name]
    config = config_class(
        vocab_size=len(tok),
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.eos_token_id,
        **size,
    )
    torch.manual_seed(0)
    return model_class(config)


@pytest.mark.parametrize("name", ["gpt2", "gpt_neox", "gemma2", "cohere"])
def test_prada_trains_and_evaluates_a_student_of_another_family(synth_dir, tmp_path, name):
    folder = tmp_path / name
    _model(name).save_pretrained(str(folder))
    build_byte_tokenizer().save_pretrained(str(folder))
    # adversary.layer=1: the target pass stops early through a hook on this family's decoder layers too
    cfg = tiny_config(
        synth_dir,
        "method=prada",
        f"student.model={folder}",
        "train.max_steps=2",
        "train.save_every=0",
        "adversary.layer=1",
    )
    run = train(cfg, tmp_path / "run", progress=False)
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2]
    assert all(math.isfinite(row["lm_loss"]) and math.isfinite(row["domain_loss"]) for row in log)
    result, _ = evaluate_run(run)
    assert result["datasets"] and all(0.0 <= d["accuracy"] <= 100.0 for d in result["datasets"].values())


@pytest.mark.parametrize("name", ["qwen2", "gemma2", "cohere", "granite"])
def test_the_cot_loss_is_the_cross_entropy_of_the_models_own_logits(name):
    """Soft-capped (Gemma-2) or scaled (Cohere, Granite) logits: the student trains what the model samples from."""
    model = _model(name).eval()
    student = Student(model).eval()
    assert student.head_gives_logits == (name == "qwen2")
    tok = build_byte_tokenizer()
    rows = [
        TrainItem(tok("Q: 2 + 3? ###")["input_ids"], tok(" 2 + 3 = 5 --> 5")["input_ids"], 0),
        TrainItem(tok("Q: is a coin still heads? ###")["input_ids"], tok(" no flips --> yes")["input_ids"], 1),
    ]
    batch = collate(rows, tok.pad_token_id)
    loss = student(batch)[0]["lm_loss"]
    keep = batch.labels[:, 1:] != -100
    with torch.no_grad():
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
        head_only = model.get_output_embeddings()(out.hidden_states[-1])
    reference = nn.functional.cross_entropy(out.logits[:, :-1][keep].float(), batch.labels[:, 1:][keep])
    assert torch.allclose(loss, reference, atol=1e-5), (loss, reference)
    if name != "qwen2":  # the head alone gives another loss here: the check is not vacuous
        wrong = nn.functional.cross_entropy(head_only[:, :-1][keep].float(), batch.labels[:, 1:][keep])
        assert not torch.allclose(wrong, reference, atol=1e-3)
