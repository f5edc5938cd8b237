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
    student, tok = _diverse_student()
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


def _diverse_student():
    """A small random Llama whose greedy outputs differ per prompt (the tiny-random preset repeats one token)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer(resolve_model("tiny-random"))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, initializer_range=0.2, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return Student(LlamaForCausalLM(config).eval(), FrozenPrompt(torch.randn(4, 64) * 0.5)), tok


def test_refilled_slots_equal_one_at_a_time_when_rows_end_at_different_steps():
    """Rows end early at a chosen 'EOS' (a token the model emits at different steps per prompt), so
    finished slots are refilled mid-decode: every output must still equal the prompt generated alone."""
    student, tok = _diverse_student()
    prompts = [tok(q)["input_ids"] for q in QUESTIONS + ["1 2 3 ###", "Is ice cold? ###", "Name a colour of the sky. ###"]]
    free_running = greedy_generate(student, prompts, eos_id=-1, pad_id=tok.pad_token_id, max_new_tokens=16)
    first_hit = lambda t: {out.index(t) for out in free_running if t in out}  # noqa: E731
    eos = max({t for out in free_running for t in out}, key=lambda t: len(first_hit(t)))
    alone = [greedy_generate(student, [p], eos, tok.pad_token_id, max_new_tokens=16)[0] for p in prompts]
    assert len({len(a) for a in alone}) >= 4, "the chosen token should end rows at different steps"
    seen: list[int] = []
    refilled = greedy_generate(student, prompts, eos, tok.pad_token_id, max_new_tokens=16, batch_size=3,
                               on_finish=lambda idx, toks: seen.extend(idx))
    assert refilled == alone
    assert sorted(seen) == list(range(len(prompts)))
