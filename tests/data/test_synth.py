"""The synthetic suite: layout, determinism, disjoint splits, and answers recomputed independently."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from prada.data.registry import DOMAINS
from prada.data.schema import read_examples
from prada.data.synth import SYNTH, build_synth, generate
from prada.errors import ConfigError

KEYS = list(SYNTH)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return out, build_synth(out, seed=1, n_train=40, n_test=15, progress=False)


def test_layout_summary_and_read_back(built):
    out, summary = built
    assert json.loads((out / "summary.json").read_text()) == summary
    assert (
        set(summary["datasets"])
        == set(KEYS)
        == {
            "synth_arithmetic",
            "synth_last_letter",
            "synth_coin_flip",
            "synth_tracking",
            "synth_date",
            "synth_commonsense",
        }
    )
    for key, row in summary["datasets"].items():
        assert row == {
            "domain": SYNTH[key].domain,
            "n_train": 40,
            "n_test": 15,
            "n_train_with_correct_rationale": 40,
            "teacher_accuracy": 100.0,
        }
        assert row["domain"] in DOMAINS
        for split, n in (("train", 40), ("test", 15)):
            examples = read_examples(out / key / f"{split}.jsonl")
            assert len(examples) == n
            assert len({e.id for e in examples}) == n
            for e in examples:
                assert (e.dataset, e.domain, e.answer_type) == (key, SYNTH[key].domain, SYNTH[key].answer_type)
                assert (e.choices is not None) == (e.answer_type == "choice")
                if e.choices:
                    assert e.answer in e.choices
                    assert all(f"({c}) " in e.question for c in e.choices)
                [r] = e.rationales
                assert (r.answer, r.correct, r.teacher) == (e.answer, True, "synth/rule")
                assert "\n" not in r.text


def test_no_train_test_overlap(built):
    out, _ = built
    for key in KEYS:
        train = [e.question for e in read_examples(out / key / "train.jsonl")]
        test = [e.question for e in read_examples(out / key / "test.jsonl")]
        assert len(set(train)) == len(train) and len(set(test)) == len(test)
        assert not set(train) & set(test)


def test_same_seed_same_bytes(built, tmp_path):
    out, _ = built
    again = tmp_path / "again"
    build_synth(again, seed=1, n_train=40, n_test=15, progress=False)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for f in files:
        assert (out / f).read_bytes() == (again / f).read_bytes(), f
    other = build_synth(tmp_path / "other", seed=2, n_train=40, n_test=15, datasets=["synth_date"], progress=False)
    assert list(other["datasets"]) == ["synth_date"]
    assert (tmp_path / "other/synth_date/train.jsonl").read_bytes() != (out / "synth_date/train.jsonl").read_bytes()


def test_bad_knobs_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown synthetic dataset"):
        build_synth(tmp_path, datasets=["synth_nope"], progress=False)
    with pytest.raises(ConfigError, match="difficulty"):
        generate("synth_coin_flip", 3, 0, 0)
    with pytest.raises(ConfigError, match="distinct questions"):
        generate("synth_last_letter", 2000, 0, 1)  # only 40 x 39 ordered name pairs exist


def test_difficulty_makes_longer_questions_and_rationales():
    for key in KEYS:
        q_len, r_len = [], []
        for d in (1, 2, 3):
            ex = generate(key, 60, 0, d)
            q_len.append(sum(len(e.question.split()) for e in ex) / len(ex))
            r_len.append(sum(len(e.rationales[0].text.split()) for e in ex) / len(ex))
        assert q_len[0] < q_len[1] < q_len[2], (key, q_len)
        assert r_len[0] < r_len[1] < r_len[2], (key, r_len)
        assert 8 <= r_len[0] <= 70, (key, r_len)  # short enough for a small student


# --- independent recomputation of the gold answer from the question text alone -------------------------


def _last_letter(q: str) -> str:
    return "".join(w[-1].lower() for w in re.search(r'"(.+)"', q).group(1).split())


def _coin_flip(q: str) -> str:
    flips = len(re.findall(r"\w+ flips the coin\.", q))
    assert flips + len(re.findall(r"does not flip the coin\.", q)) >= 2
    return "yes" if flips % 2 == 0 else "no"


def _arithmetic(q: str) -> str:
    sentences = re.split(r"(?<=[.?])\s", q)
    n = int(re.match(r"\w+ has (\d+)", sentences[0]).group(1))
    for s in sentences[1:-1]:
        if m := re.search(r"buys (\d+) packs with (\d+)", s):
            n += int(m.group(1)) * int(m.group(2))
        elif m := re.search(r"(?:buys|finds|gives (?:him|her)) (\d+)", s):
            n += int(m.group(1))
        elif m := re.search(r"(?:gives|loses) (\d+)", s):
            n -= int(m.group(1))
        elif "half" in s:
            assert n % 2 == 0
            n //= 2
        else:
            raise AssertionError(f"unparsed step: {s}")
    return str(n)


def _options(q: str) -> dict[str, str]:
    return dict(re.findall(r"\(([A-G])\) (.*?)(?= \([A-G]\) |$)", q))


def _tracking(q: str) -> str:
    start = re.search(r": (.*?)\. As time goes on", q).group(1)
    options = _options(q)
    have = {}
    for part in re.split(r", and |, ", start):
        person, rest = part.split(" ", 1)
        [item] = [o for o in options.values() if rest.endswith(o)]
        have[person] = item
    for a, b in re.findall(r"(?:First|Then|Finally), (\w+) and (\w+) ", q):
        have[a], have[b] = have[b], have[a]
    m = re.search(
        r"At the end of the \w+, (?:which \w+ does (\w+) have|who is (\w+) dancing with|"
        r"which position is (\w+) playing)\?",
        q,
    )
    asked = next(g for g in m.groups() if g)
    return next(letter for letter, o in options.items() if o == have[asked])


def _parse_date(s: str) -> dt.date:
    for fmt in ("%m/%d/%Y", "%B %d, %Y"):
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            pass
    raise AssertionError(s)


def _days(amount: str) -> int:
    n, unit = amount.split()
    n = 1 if n == "one" else int(n)
    return 7 * n if unit.startswith("week") else n


def _date(q: str) -> str:
    today = _parse_date(re.match(r"Today is (.*?)\. ", q).group(1))
    amt = r"(one week|\d+ weeks|\d+ days)"
    if m := re.search(rf"What is the date {amt} (ago|from today) in", q):
        day = today + dt.timedelta(days=_days(m.group(1)) * (-1 if m.group(2) == "ago" else 1))
    else:
        events: dict[str, dt.date] = {}
        for ev, a, how, ref in re.findall(
            rf"(The \w+) (?:was|is) {amt} (ago|from today|before|after)(?: (the \w+))?\.", q
        ):
            base = today if ref == "" else events[ref.lower()]
            events[ev.lower()] = base + dt.timedelta(days=_days(a) * (-1 if how in ("ago", "before") else 1))
        day = events[re.search(r"What is the date of (the \w+) in", q).group(1)]
    [letter] = [k for k, v in _options(q).items() if v == day.strftime("%m/%d/%Y")]
    return letter


RECOMPUTE = {
    "synth_last_letter": _last_letter,
    "synth_coin_flip": _coin_flip,
    "synth_arithmetic": _arithmetic,
    "synth_tracking": _tracking,
    "synth_date": _date,
}


@pytest.mark.parametrize("key", sorted(RECOMPUTE))
@pytest.mark.parametrize("difficulty", [1, 3])
def test_gold_answers_recomputed_from_question(key, difficulty):
    for e in generate(key, 80, seed=7, difficulty=difficulty):
        assert RECOMPUTE[key](e.question) == e.answer == e.rationales[0].answer, e.question


def test_arithmetic_rationale_equations_hold_and_end_on_answer():
    for e in generate("synth_arithmetic", 80, seed=5, difficulty=3):
        text = e.rationales[0].text
        eqs = re.findall(r"(\d+) ([-+x/]) (\d+) = (\d+)", text)
        assert len(eqs) >= 4
        for a, op, b, c in eqs:
            a, b, c = int(a), int(b), int(c)
            assert {"+": a + b, "-": a - b, "x": a * b, "/": a // b}[op] == c and (op != "/" or a % b == 0)
        assert re.findall(r"\d+", text)[-1] == e.answer


def test_date_rationale_steps_are_calendar_true():
    for e in generate("synth_date", 80, seed=5, difficulty=2):
        for n, how, a, b in re.findall(
            r"(\d+) days? (before|after) (\d\d/\d\d/\d{4}) is (\d\d/\d\d/\d{4})", e.rationales[0].text
        ):
            sign = -1 if how == "before" else 1
            assert _parse_date(a) + dt.timedelta(days=sign * int(n)) == _parse_date(b)


# Facts checked by hand here, independently of the generator's table.
KNOWN = {
    "Can a bat fly?": "yes",
    "Can an emperor penguin fly?": "no",
    "Can an ostrich fly?": "no",
    "Can a hummingbird fly?": "yes",
    "Does a platypus lay eggs?": "yes",
    "Does a cat lay eggs?": "no",
    "Does a crocodile lay eggs?": "yes",
    "Is a blue whale a fish?": "no",
    "Is a blue whale a mammal?": "yes",
    "Is a spider an insect?": "no",
    "Is a bat a bird?": "no",
    "Is a dolphin a mammal?": "yes",
}
MASS_ORDER = ["mouse", "cat", "horse", "elephant", "blue whale"]  # clearly increasing typical adult mass


def test_commonsense_answers_agree_with_hand_checked_facts():
    seen = 0
    for e in generate("synth_commonsense", 600, seed=0, difficulty=1):
        assert e.answer in ("yes", "no") and e.rationales[0].text.endswith(f"the answer is {e.answer}.")
        if e.question in KNOWN:
            assert e.answer == KNOWN[e.question], e.question
            seen += 1
        if m := re.fullmatch(r"Is an? (.+) (heavier|lighter) than an? (.+)\?", e.question):
            x, word, y = m.groups()
            if x in MASS_ORDER and y in MASS_ORDER:
                bigger = MASS_ORDER.index(x) > MASS_ORDER.index(y)
                assert e.answer == ("yes" if bigger == (word == "heavier") else "no"), e.question
                seen += 1
    assert seen >= 10
