"""Answer extraction and scoring (Fine-tune-CoT rules). The only home of answer rules.

Below every stage: data/ (teacher accuracy on import), teacher/ (keeping correct rationales) and
evaluation/ all read answers with these rules, and the student format's `-->` separator is defined
here because the rules depend on it.

Student outputs look like ` {rationale} --> {answer}`. `extract_answer` reads the text after the
first `-->` and takes the FIRST candidate of the answer type there; when the separator is missing
(a truncated or malformed generation) it takes the LAST candidate anywhere in the text, which is
where a reasoning chain usually states its conclusion.

Teacher outputs (Zero-shot-CoT stage 2, "Therefore, the answer (arabic numerals) is 42.") are read
by `extract_teacher_answer`: the first candidate in the answer text, as Zero-shot-CoT's own
answer cleansing does.

Model output is only ever matched with regular expressions and parsed with `float`/`Fraction`;
nothing is evaluated.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

ANSWER_SEPARATOR = "-->"
"""Between a student's rationale and its answer (` {rationale} --> {answer}`, distill/format.py)."""
DEFAULT_CHOICES = ["A", "B", "C", "D", "E"]

# A number: optional sign (not when glued to a preceding word or digit, so "5-3" gives 5 and 3),
# optional "$", digits with thousands commas or plain digits, optional decimals, optional "/den".
_NUMBER_RE = re.compile(
    r"(?<![\w.])(?P<sign>-)?\$?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:/(?P<den>\d+(?:\.\d+)?)(?![\d/]))?"
)
_YES_NO_RE = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_QUOTES = {'"': '"', "“": "”", "'": "'"}  # opener -> closer of a quoted free-text answer
_WORD_AFTER_RE = re.compile(r" ([a-z]+)")

MAX_ANSWER_CHARS = 10_000
"""Characters an answer rule reads: the first ones after `-->` (or of a teacher's answer text), the last ones
of a text without it. Far beyond any real answer; a hostile 2 MB reply costs what 10 kB cost."""
# Words that follow a choice letter ("A or E", "A is correct"), unlike the article ("A person ...").
_AFTER_LETTER = frozenset(
    "or and nor to through is was seems would could might may must should because since as".split()
)
_QUOTE_CHARS = "\"'“”‘’`"


def canonical_number(text: str) -> str | None:
    """Canonical string of one number written as text ("1,234.50" -> "1234.5", "3/4" -> "0.75")."""
    m = _NUMBER_RE.fullmatch(text.strip().rstrip("."))
    if m is None:
        return None
    return _canonical_from_match(m)


def _canonical_from_match(m: re.Match) -> str | None:
    num = m.group("num").replace(",", "")
    sign = "-" if m.group("sign") else ""
    den = m.group("den")
    if den is not None:
        try:
            try:
                value = Fraction(num) / Fraction(den)
            except ZeroDivisionError:  # "12/0" is not a fraction: keep the numerator
                value = Fraction(num)
            if value.denominator == 1:
                return sign + str(value.numerator) if value else "0"
            return _format_float(float(-value if sign else value))
        except (OverflowError, ValueError):  # thousands of digits: beyond float and int-string limits, no answer
            return None
    int_part, _, frac = num.partition(".")
    frac = frac.rstrip("0")
    num = (int_part.lstrip("0") or "0") + ("." + frac if frac else "")
    if num == "0":
        return "0"
    return sign + num


def _format_float(x: float) -> str:
    if x.is_integer():
        return str(int(x))
    return repr(x)


def _number_candidates(text: str) -> list[str]:
    out = []
    for m in _NUMBER_RE.finditer(text):
        c = _canonical_from_match(m)
        if c is not None:
            out.append(c)
    return out


def _choice_candidates(text: str, choices: list[str]) -> list[str]:
    """Letters among `choices` written as "(B)", "B)" or a standalone "B" token, in text order.

    A bare "A" that opens a sentence and is followed by a lowercase word ("A person would...") is
    the article, not a choice, and is skipped.
    """
    letters = "".join(re.escape(c) for c in choices if c)
    if not letters:
        return []
    pattern = re.compile(rf"\(([{letters}])\)|(?<![A-Za-z0-9])([{letters}])(?![A-Za-z0-9])")
    out = []
    for m in pattern.finditer(text):
        if m.group(1):
            out.append(m.group(1))
            continue
        letter = m.group(2)
        if letter == "A" and not text[m.end() : m.end() + 1] == ")":
            # look around the match in place: slicing text[:start] for each "A" made this quadratic
            j = m.start() - 1
            while j >= 0 and text[j] in " \t":
                j -= 1
            at_sentence_start = j < 0 or text[j] in ".!?:\n"
            word = _WORD_AFTER_RE.match(text, m.end())
            if at_sentence_start and word and word.group(1) not in _AFTER_LETTER:
                continue
        out.append(letter)
    return out


def _yes_no_candidates(text: str) -> list[str]:
    return [m.group(1).lower() for m in _YES_NO_RE.finditer(text)]


def _clean_text_answer(text: str) -> str | None:
    """First line of a free-text answer without quotes, trailing period or surrounding whitespace."""
    text = text.strip()
    if not text:
        return None
    quoted = next(_quoted(text), None)
    if quoted is not None:
        return quoted.strip().rstrip(".").strip() or None
    line = text.splitlines()[0].strip()
    line = line.strip(_QUOTE_CHARS).rstrip(".").strip().strip(_QUOTE_CHARS).strip()
    return line or None


def _quoted(text: str):
    """The insides of "...", “...” and '...' (one line, not empty), left to right, as a regex
    `"([^"\\n]+)"|“([^”\\n]+)”|'([^'\\n]+)'` finds them, in linear time: that regex rescans the rest
    of the text from every opener without a closer (40 kB of `“a` took 20 s)."""
    nxt: dict[str, int] = {}  # character -> its next position at or after the scan point (-1: none left)

    def find(ch: str, start: int) -> int:
        pos = nxt.get(ch)
        if pos is None or (pos != -1 and pos < start):
            pos = nxt[ch] = text.find(ch, start)
        return pos

    i, n = 0, len(text)
    while i < n:
        starts = [p for p in (find(q, i) for q in _QUOTES) if p != -1]
        if not starts:
            return
        i = min(starts)
        closer = _QUOTES[text[i]]
        end, newline = find(closer, i + 1), find("\n", i + 1)
        if end > i + 1 and (newline == -1 or end < newline):
            yield text[i + 1 : end]
            i = end + 1
        else:
            i += 1


def _last_text_candidate(text: str) -> str | None:
    """Without a separator: the last quoted string, else the last word (punctuation stripped)."""
    last = None
    for quoted in _quoted(text):
        last = quoted
    if last is not None:
        return last.strip() or None
    words = [w.strip(_QUOTE_CHARS + ".,;:!?()") for w in text.split()]
    words = [w for w in words if w]
    return words[-1] if words else None


def _candidates(text: str, answer_type: str, choices: list[str] | None) -> list[str]:
    if answer_type == "number":
        return _number_candidates(text)
    if answer_type == "choice":
        return _choice_candidates(text, choices or DEFAULT_CHOICES)
    if answer_type == "yes_no":
        return _yes_no_candidates(text)
    raise ValueError(f"unknown answer_type {answer_type!r} (expected number, choice, yes_no or text)")


def extract_answer(text: str, answer_type: str, choices: list[str] | None = None) -> str | None:
    """The answer in a student output: first candidate after the first `-->`, else the last candidate.

    Returns a canonical string (numbers: "1234.5"; choices: the letter; yes_no: "yes"/"no";
    text: the cleaned string) or None when the text holds no candidate of that type.
    """
    at = text.find(ANSWER_SEPARATOR)
    if at != -1:
        tail = text[at + len(ANSWER_SEPARATOR) : at + len(ANSWER_SEPARATOR) + MAX_ANSWER_CHARS]
        if answer_type == "text":
            return _clean_text_answer(tail)
        found = _candidates(tail, answer_type, choices)
        return found[0] if found else None
    text = text[-MAX_ANSWER_CHARS:]
    if answer_type == "text":
        return _last_text_candidate(text)
    found = _candidates(text, answer_type, choices)
    return found[-1] if found else None


def extract_teacher_answer(answer_text: str, answer_type: str, choices: list[str] | None = None) -> str | None:
    """The answer in a Zero-shot-CoT stage-2 completion (the text after "Therefore, the answer ... is").

    Takes the first candidate, as Zero-shot-CoT's answer cleansing does for its zero-shot methods.
    """
    answer_text = answer_text[:MAX_ANSWER_CHARS]
    if answer_type == "text":
        return _clean_text_answer(answer_text)
    found = _candidates(answer_text, answer_type, choices)
    return found[0] if found else None


GOLD_RULES = """Gold answers are checked against their answer_type when read, and three common spellings are
normalised: text after a GSM8K-style `####` ("... so 3 + 4 = 7. #### 7" -> "7", any answer_type), a
parenthesised choice letter ("(B)" -> "B") and yes/no in any case or with a final period ("Yes." -> "yes").
A `number` gold must be one number, a `choice` gold one of the example's choices (A-E without
`choices`), a `yes_no` gold yes or no; anything else is an error naming the file and line."""

_PAREN_LETTER_RE = re.compile(r"\(\s*([A-Za-z])\s*\)")


def normalise_gold(answer: str, answer_type: str, choices: list[str] | None = None) -> str:
    """A gold answer as the scorer compares it (see GOLD_RULES), or ValueError saying what is wrong with it.

    Without these checks a number question with gold "Yes", or a choice gold "(B)" against predicted
    letters, is a question that no prediction can ever get right, and nothing says so.
    """
    gold = answer.strip()
    if "####" in gold:  # GSM8K's answer column: worked solution, then "#### final answer"
        gold = gold.rpartition("####")[2].strip()
        if not gold:
            raise ValueError(f"{answer!r} has nothing after '####' (GSM8K form: '... #### 7')")
    if answer_type == "number":
        if canonical_number(gold) is None:
            raise ValueError(f"{gold!r} is not a number (answer_type number); give the number, e.g. 7")
    elif answer_type == "choice":
        letters = choices or DEFAULT_CHOICES
        paren = _PAREN_LETTER_RE.fullmatch(gold)
        gold = paren.group(1) if paren else gold
        if gold not in letters:
            where = "the example's choices" if choices else "the default choices (no `choices` given)"
            raise ValueError(f"{gold!r} is not one of {where} {', '.join(letters)}; give the letter, e.g. B")
    elif answer_type == "yes_no":
        word = gold.rstrip(".").strip().lower()
        if word not in ("yes", "no"):
            raise ValueError(f"{gold!r} is not yes or no (answer_type yes_no)")
        gold = word
    return gold


def _to_float(text: str) -> float | None:
    c = canonical_number(text)
    if c is None:
        return None
    try:
        return float(c)
    except ValueError:
        return None


def is_correct(prediction: str | None, gold: str, answer_type: str) -> bool:
    """Whether a prediction equals the gold answer.

    Numbers compare as floats within 1e-6; text answers case-insensitively ignoring whitespace;
    choices and yes/no case-insensitively after stripping.
    """
    if prediction is None:
        return False
    if answer_type == "number":
        p, g = _to_float(prediction), _to_float(gold)
        if p is None or g is None:
            return False
        return math.isclose(p, g, rel_tol=1e-9, abs_tol=1e-6)
    if answer_type == "text":  # "n a o a" and "naoa" are the same letter string
        return "".join(prediction.split()).lower() == "".join(gold.split()).lower()
    return prediction.strip().lower() == gold.strip().lower()
