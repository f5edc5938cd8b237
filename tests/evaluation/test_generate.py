"""Batched, left-padded greedy generation equals one-at-a-time generation, with and without a virtual prompt."""

import torch

from prada.evaluation.generate import SMALL_ROWS, generate_texts, greedy_generate, weight_first_linears
from prada.methods.prompt import FrozenPrompt
from prada.train.backbones import load_causal_lm, load_tokenizer, resolve_model
from prada.train.student import Student

QUESTIONS = [
    "What is 2 + 3? ###",
    "A coin is heads up. Ann flips the coin. Is it heads up? ###",
    "Hi ###",
    'Take the last letters of each words in "Ann Bob" and concatenate them. ###',
]


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
        ref = student.lm.generate(
            torch.tensor([ids]), max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id
        )[0, len(ids) :].tolist()
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
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.2,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return Student(LlamaForCausalLM(config).eval(), FrozenPrompt(torch.randn(4, 64) * 0.5)), tok


def test_refilled_slots_equal_one_at_a_time_when_rows_end_at_different_steps():
    """Rows end early at a chosen 'EOS' (a token the model emits at different steps per prompt), so
    finished slots are refilled mid-decode: every output must still equal the prompt generated alone."""
    student, tok = _diverse_student()
    prompts = [
        tok(q)["input_ids"] for q in QUESTIONS + ["1 2 3 ###", "Is ice cold? ###", "Name a colour of the sky. ###"]
    ]
    free_running = greedy_generate(student, prompts, eos_id=-1, pad_id=tok.pad_token_id, max_new_tokens=16)
    first_hit = lambda t: {out.index(t) for out in free_running if t in out}  # noqa: E731
    eos = max({t for out in free_running for t in out}, key=lambda t: len(first_hit(t)))
    alone = [greedy_generate(student, [p], eos, tok.pad_token_id, max_new_tokens=16)[0] for p in prompts]
    assert len({len(a) for a in alone}) >= 4, "the chosen token should end rows at different steps"
    seen: list[int] = []
    refilled = greedy_generate(
        student,
        prompts,
        eos,
        tok.pad_token_id,
        max_new_tokens=16,
        batch_size=3,
        on_finish=lambda idx, toks: seen.extend(idx),
    )
    assert refilled == alone
    assert sorted(seen) == list(range(len(prompts)))


def test_weight_first_linears_compute_the_same_layers_and_give_their_forward_back():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.GELU(), torch.nn.Linear(7, 3, bias=False))
    few, many = torch.randn(2, 3, 5), torch.randn(SMALL_ROWS + 6, 5)  # a decoding step's rows; a prefill's
    expected = [model(few), model(many)]
    with weight_first_linears(model):
        assert all("forward" in m.__dict__ for m in (model[0], model[2]))
        got = [model(few), model(many)]
        model(few).sum().backward()  # still differentiable (the explain/eval paths never need it, but nothing breaks)
    for e, g in zip(expected, got):
        assert g.shape == e.shape and g.is_contiguous()
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
    try:
        with weight_first_linears(model):
            raise RuntimeError("a failure inside generation")
    except RuntimeError:
        pass
    assert not any("forward" in m.__dict__ for m in model.modules())
