"""Batched, left-padded greedy generation equals one-at-a-time generation, with and without a virtual prompt."""

import torch

from prada.evaluation.generate import generate_texts, greedy_generate
from prada.methods.prompt import FrozenPrompt
from prada.train.backbones import load_causal_lm, load_tokenizer, resolve_model
from prada.train.student import Student

QUESTIONS = ["What is 2 + 3? ###", "A coin is heads up. Ann flips the coin. Is it heads up? ###", "Hi ###",
             "Take the last letters of each words in \"Ann Bob\" and concatenate them. ###"]


def _student(prompt: bool):
    path = resolve_model("tiny-random")
    lm = load_causal_lm(path).eval()
    torch.manual_seed(1)
    p = FrozenPrompt(torch.randn(4, lm.config.hidden_size) * 0.5) if prompt else None
    return Student(lm, p), load_tokenizer(path)


def test_batched_equals_one_at_a_time_with_prompt():
    student, tok = _student(prompt=True)
    batched = generate_texts(student, tok, QUESTIONS, max_new_tokens=20, batch_size=4)
    single = [generate_texts(student, tok, [q], max_new_tokens=20, batch_size=1)[0] for q in QUESTIONS]
    assert batched == single


def test_matches_transformers_generate_without_prompt():
    student, tok = _student(prompt=False)
    for q in QUESTIONS:
        ids = tok(q)["input_ids"]
        ours = greedy_generate(student, [ids], tok.eos_token_id, tok.pad_token_id, max_new_tokens=16)[0]
        ref = student.lm.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)[0, len(ids):].tolist()
        if tok.eos_token_id in ref:
            ref = ref[: ref.index(tok.eos_token_id)]
        assert ours == ref


def test_stops_at_eos_and_budget():
    student, tok = _student(prompt=False)
    out = greedy_generate(student, [tok("x ###")["input_ids"]], tok.eos_token_id, tok.pad_token_id, max_new_tokens=5)
    assert len(out[0]) <= 5
