"""The second outside attack (issue 25), answer rules: every rule is linear on 100 kB adversarial strings (the
quoted-answer regex was quadratic: 40 kB of `“a` took 20 s), and `choices: [""]` does not crash the ftcot scorer."""

from __future__ import annotations

# --- item 3: answer extraction is linear; a 2 MB teacher reply does not hang `teach` ------------------------------

N = 100_000  # characters of each adversarial string
ADVERSARIAL = {
    "curly-open": "“a" * (N // 2),
    "straight-open": '"a\n' * (N // 3),
    "apostrophes": "'a\n" * (N // 3),
    "sentence-A": ". A a" * (N // 5),
    "A-tokens": " A" * (N // 2),
    "parens": "(A" * (N // 2),
    "thousands": "1," * (N // 2),
    "fractions": "1/" * (N // 2),
    "separators": "-->" * (N // 3),
    "digits": "9" * N,
    "decimals": "1." * (N // 2),
    "yes": "yes " * (N // 4),
    "newlines": "\n" * N,
}


def _every_rule():
    """(name, function of a text) for every answer rule: prada's (student and teacher) and the ftcot port."""
    from prada.answers import extract_answer, extract_teacher_answer
    from prada.evaluation.scorers import score_output

    for t in ("number", "choice", "yes_no", "text"):
        yield f"student {t}", lambda s, t=t: extract_answer(s, t)
        yield f"student --> {t}", lambda s, t=t: extract_answer("x -->" + s, t)
        yield f"teacher {t}", lambda s, t=t: extract_teacher_answer(s, t)
        yield f"ftcot {t}", lambda s, t=t: score_output(s, "ftcot", "custom", t, "1")


def test_every_answer_rule_is_fast_on_100_kb_adversarial_strings():
    import sys
    import time

    times = {}
    for attack, text in ADVERSARIAL.items():
        for rule, fn in _every_rule():
            t0 = time.perf_counter()
            fn(text)
            times[f"{attack} / {rule}"] = time.perf_counter() - t0
    slowest = max(times, key=times.get)
    print(f"\nslowest answer extraction on {N // 1000} kB: {times[slowest]:.4f} s ({slowest})", file=sys.__stderr__)
    assert times[slowest] < 0.5, slowest  # quadratic rules took 20 s on 40 kB


def test_the_quoted_answer_rule_is_unchanged():
    from prada.answers import extract_answer, extract_teacher_answer

    assert extract_teacher_answer(' "abc". and "def"', "text") == "abc"
    assert extract_teacher_answer("“x y”", "text") == "x y"
    assert extract_teacher_answer('"" then "q"', "text") == "then"  # as the regex read it: " then "
    assert extract_answer('it is "ab" or "cd"', "text") == "cd"  # without -->: the last one
    assert extract_answer("\"a\nb\" then 'zz'", "text") == "zz"  # no quote across a line


# --- item 15: `choices: [""]` -------------------------------------------------------------------------------------


def test_the_ftcot_scorer_takes_an_empty_choice_list_entry():
    from prada.evaluation.scorers import score_output

    assert score_output("so --> (A)", "ftcot", "custom", "choice", "A", choices=[""]).correct is False
