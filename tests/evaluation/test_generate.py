"""Batched, left-padded greedy generation equals one-at-a-time generation, with and without a virtual prompt."""

import pytest
import torch

from prada.evaluation.generate import SMALL_ROWS, generate_texts, greedy_generate, weight_first_linears
from prada.methods.prompt import FrozenPrompt
from prada.model_aliases import resolve_model
from prada.train.backbones import load_causal_lm, load_tokenizer
from prada.train.student import Student

COUNTING = [f"{q} ###" for q in ("a", "kq", "t", "mb", "dh", "ss", "pc", "jgo")]


def _student(prompt: bool):
    path = resolve_model("tiny-random")
    lm = load_causal_lm(path).eval()
    torch.manual_seed(1)
    p = FrozenPrompt(torch.randn(4, lm.config.hidden_size) * 0.5) if prompt else None
    return Student(lm, p), load_tokenizer(path)


def _counting_student(folder, prompt: bool):
    """The counting-task student (conftest `counting_model`), behind a random 4-token prompt if asked."""
    lm = load_causal_lm(str(folder)).eval()
    torch.manual_seed(1)
    return Student(lm, FrozenPrompt(torch.randn(4, lm.config.hidden_size)) if prompt else None), load_tokenizer(
        str(folder)
    )


def _assert_informative(texts: list[str]) -> None:
    """Outputs a comparison can tell apart: all different, long, and ending at different lengths."""
    assert len(set(texts)) == len(texts), texts
    assert min(len(t) for t in texts) >= 8 and len({len(t) for t in texts}) >= 4, texts


@pytest.mark.parametrize("prompt", [False, True])
def test_batched_equals_one_at_a_time(counting_model, prompt):
    student, tok = _counting_student(counting_model, prompt)
    batched = generate_texts(student, tok, COUNTING, max_new_tokens=64, batch_size=8)
    single = [generate_texts(student, tok, [q], max_new_tokens=64, batch_size=1)[0] for q in COUNTING]
    _assert_informative(single)
    assert single[1].startswith(" r s t u v w x y z -->")  # the task was learnt
    assert batched == single


def test_matches_transformers_generate_without_prompt(counting_model):
    student, tok = _counting_student(counting_model, prompt=False)
    ours_all, refs = [], []
    for q in COUNTING:
        ids = tok(q)["input_ids"]
        ours = greedy_generate(student, [ids], tok.eos_token_id, tok.pad_token_id, max_new_tokens=64)[0]
        ref = student.lm.generate(
            torch.tensor([ids]), max_new_tokens=64, do_sample=False, pad_token_id=tok.pad_token_id
        )[0, len(ids) :].tolist()
        if tok.eos_token_id in ref:
            ref = ref[: ref.index(tok.eos_token_id)]
        ours_all.append(tok.decode(ours))
        refs.append(ref)
        assert ours == ref
    _assert_informative(ours_all)


def test_stops_at_eos_and_budget():
    student, tok = _student(prompt=False)
    out = greedy_generate(student, [tok("x ###")["input_ids"]], tok.eos_token_id, tok.pad_token_id, max_new_tokens=5)
    assert len(out[0]) <= 5


@pytest.mark.parametrize("refill_after", [1, 2, 3])
def test_refilled_slots_equal_one_at_a_time_when_rows_end_at_different_steps(counting_model, monkeypatch, refill_after):
    """Rows end at EOS after 2 to 50 tokens, so finished slots are refilled mid-decode: every output
    must still equal the prompt generated alone, whether finished rows leave at once (refill_after 1) or ride
    along unread until a group has ended (2, 3: fewer cache copies)."""
    import prada.evaluation.generate as generate

    student, tok = _counting_student(counting_model, prompt=True)
    prompts = [tok(q)["input_ids"] for q in COUNTING + ["x ###", "bb ###", "qrs ###"]]
    alone = [greedy_generate(student, [p], tok.eos_token_id, tok.pad_token_id, max_new_tokens=64)[0] for p in prompts]
    assert len({len(a) for a in alone}) >= 6, "rows should end at different steps"
    assert all(len(a) < 64 for a in alone), "every row should end with EOS, not the budget"
    seen: list[int] = []
    dropped: list[int] = []  # rows each compaction drops
    keep = generate._Rows.keep
    monkeypatch.setattr(
        generate._Rows, "keep", lambda self, k, c: dropped.append(len(self.index) - len(k)) or keep(self, k, c)
    )
    refilled = greedy_generate(
        student,
        prompts,
        tok.eos_token_id,
        tok.pad_token_id,
        max_new_tokens=64,
        batch_size=3,
        on_finish=lambda idx, toks: seen.extend(idx),
        refill_after=refill_after,
    )
    assert refilled == alone
    assert sorted(seen) == list(range(len(prompts)))  # each row reported once, though ended rows ride along
    if refill_after == 1:  # at once: a compaction for (nearly) every row that ends before the queue runs dry
        assert len(dropped) >= len(prompts) - 3 and max(dropped) <= 2, dropped
    else:  # in groups: never one row alone, and half the compactions at most
        assert min(dropped) >= 2 and len(dropped) <= len(prompts) // 2, dropped


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


def test_generation_stats_count_the_tokens_decoded(counting_model):
    """`stats` reports exactly the prompt and new tokens of the rows, and the rows the budget cut."""
    student, tok = _counting_student(counting_model, prompt=False)
    budget = 20  # short enough that the long counts hit it, long enough that short ones end first
    stats: dict = {}
    texts = generate_texts(student, tok, COUNTING, max_new_tokens=budget, batch_size=3, stats=stats)
    new = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert stats["rows"] == len(COUNTING)
    assert stats["prompt_tokens"] == sum(len(tok(q)["input_ids"]) for q in COUNTING)
    assert stats["new_tokens"] == sum(new)
    assert stats["rows_at_budget"] == sum(n >= budget for n in new)
    assert 0 < stats["rows_at_budget"] < len(COUNTING), new
