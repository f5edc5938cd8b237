"""`prada data synth`: an offline, seeded suite of generated questions with correct rule-made rationales.

Each family mirrors one benchmark task (Zero-shot-CoT / BIG-bench wording) and writes the same layout as
`prada data build`: `out_dir/<key>/{train,test}.jsonl` and `out_dir/summary.json`. Answers and rationales
come from the same rule that builds the question, so every rationale is correct by construction.
`difficulty` 1 is the in-distribution setting; each step up adds one reasoning step (more words, flips,
swaps, date hops, facts), which gives longer out-of-distribution variants.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import json
import random
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from prada.data.registry import DatasetInfo
from prada.data.schema import Example, Rationale, write_examples
from prada.errors import ConfigError
from prada.io import atomic_write_json
from prada.progress import hidden

TEACHER = "synth/rule"

SYNTH: dict[str, DatasetInfo] = {
    d.key: d
    for d in [
        DatasetInfo("synth_arithmetic", "arithmetic", "number"),
        DatasetInfo("synth_last_letter", "symbolic", "text"),
        DatasetInfo("synth_coin_flip", "symbolic", "yes_no"),
        DatasetInfo("synth_tracking", "other", "choice"),
        DatasetInfo("synth_date", "other", "choice"),
        DatasetInfo("synth_commonsense", "commonsense", "yes_no"),
    ]
}

MALE = (
    "Tom",
    "Ben",
    "Sam",
    "Leo",
    "Max",
    "Omar",
    "Ravi",
    "Hugo",
    "Ivan",
    "Noah",
    "Kenji",
    "Diego",
    "Felix",
    "Jamal",
    "Oscar",
    "Pablo",
    "Tariq",
    "Victor",
    "Liam",
    "Arjun",
)
FEMALE = (
    "Ann",
    "Mia",
    "Zoe",
    "Emma",
    "Lily",
    "Nora",
    "Priya",
    "Sofia",
    "Yuki",
    "Fatima",
    "Grace",
    "Hana",
    "Irene",
    "Julia",
    "Keira",
    "Laura",
    "Maya",
    "Olga",
    "Rosa",
    "Wendy",
)
NAMES = MALE + FEMALE
LETTERS = "ABCDEFG"


def _choices_text(options: list[str]) -> str:
    return "Answer Choices: " + " ".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))


def _seq_word(i: int, n: int) -> str:
    return "First" if i == 0 else ("Finally" if i == n - 1 else "Then")


# --- arithmetic: multi-step word problems -------------------------------------------------------------

_ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "stamps", "cards", "shells", "balloons", "books")


def _noun(k: int, items: str) -> str:
    return items if k != 1 else items[:-1]  # every item word is a regular plural


def _n(k: int, items: str) -> str:
    return f"{k} {_noun(k, items)}"


def _arithmetic(rng: random.Random, difficulty: int) -> tuple[str, str, str, None]:
    male = rng.random() < 0.5
    name = rng.choice(MALE if male else FEMALE)
    he, him = ("he", "him") if male else ("she", "her")
    friend = rng.choice([n for n in NAMES if n != name])
    items = rng.choice(_ITEMS)
    ops = ["buy", "get", "find", "give", "lose"] + (["packs", "half"] if difficulty >= 2 else [])
    top = 8 + 2 * difficulty
    a = rng.randint(2, 20)
    q = [f"{name} has {_n(a, items)}."]
    r = [f"{name} starts with {_n(a, items)}."]
    for i in range(difficulty + 1):
        op = rng.choice([o for o in ops if not (o in ("give", "lose") and a < 3) and not (o == "half" and a % 2)])
        then = "" if i == 0 else "Then "
        subj = he if then else he.capitalize()
        k = rng.randint(1, top) if op not in ("give", "lose") else rng.randint(1, min(a - 1, top))
        if op == "buy":
            q.append(f"{then}{subj} buys {k} more {_noun(k, items)}.")
            r.append(f"{he.capitalize()} buys {k} more, so {he} has {a} + {k} = {_n(a + k, items)}.")
            a += k
        elif op == "get":
            q.append(f"{then}{friend} gives {him} {_n(k, items)}.")
            r.append(f"{friend} gives {him} {k}, so {he} has {a} + {k} = {_n(a + k, items)}.")
            a += k
        elif op == "find":
            q.append(f"{then}{subj} finds {_n(k, items)}.")
            r.append(f"{he.capitalize()} finds {k}, so {he} has {a} + {k} = {_n(a + k, items)}.")
            a += k
        elif op == "give":
            q.append(f"{then}{subj} gives {_n(k, items)} to {friend}.")
            r.append(f"{he.capitalize()} gives away {k}, so {he} has {a} - {k} = {_n(a - k, items)}.")
            a -= k
        elif op == "lose":
            q.append(f"{then}{subj} loses {_n(k, items)}.")
            r.append(f"{he.capitalize()} loses {k}, so {he} has {a} - {k} = {_n(a - k, items)}.")
            a -= k
        elif op == "packs":
            m, k = rng.randint(2, 5), rng.randint(2, 6)
            q.append(f"{then}{subj} buys {m} packs with {k} {items} in each pack.")
            r.append(f"{m} packs of {k} is {m} x {k} = {m * k}, so {he} has {a} + {m * k} = {_n(a + m * k, items)}.")
            a += m * k
        else:  # half
            q.append(f"{then}{subj} gives half of {'his' if male else 'her'} {items} to {friend}.")
            r.append(f"Half of {a} is {a} / 2 = {a // 2}, so {he} has {a} - {a // 2} = {_n(a // 2, items)}.")
            a //= 2
    q.append(f"How many {items} does {name} have now?")
    return " ".join(q), " ".join(r), str(a), None


# --- symbolic: last letters and coin flips (Zero-shot-CoT wording) ----------------------------------


def _last_letter(rng: random.Random, difficulty: int) -> tuple[str, str, str, None]:
    words = rng.sample(NAMES, difficulty + 1)
    letters = [w[-1].lower() for w in words]
    answer = "".join(letters)
    q = f'Take the last letters of each words in "{" ".join(words)}" and concatenate them.'
    r = " ".join(f'The last letter of "{w}" is "{c}".' for w, c in zip(words, letters))
    r += f' Concatenating them gives "{answer}". So the answer is {answer}.'
    return q, r, answer, None


def _coin_flip(rng: random.Random, difficulty: int) -> tuple[str, str, str, None]:
    people = rng.sample(NAMES, difficulty + 1)
    flips = [rng.random() < 0.5 for _ in people]
    q = ["A coin is heads up."]
    r = ["The coin starts heads up."]
    heads = True
    for p, f in zip(people, flips):
        q.append(f"{p} flips the coin." if f else f"{p} does not flip the coin.")
        heads ^= f
        side = "heads" if heads else "tails"
        r.append(f"{p} flips it, so it is {side} up." if f else f"{p} does not flip it, so it stays {side} up.")
    q.append('Is the coin still heads up? Note that "flip" here means "reverse".')
    n = sum(flips)
    answer = "yes" if heads else "no"
    times = "1 time" if n == 1 else f"{n} times"
    parity = "an even" if n % 2 == 0 else "an odd"
    r.append(
        f"It was flipped {times}, {parity} number, so it is {'' if heads else 'not '}heads up. "
        f"So the answer is {answer}."
    )
    return " ".join(q), " ".join(r), answer, None


# --- other: shuffled-objects tracking (BIG-bench wording) --------------------------------------------

_COLORS = ("red", "blue", "green", "yellow", "white", "black", "purple", "orange", "pink", "brown")
_BOOKS = ("Hamlet", "Dracula", "The Odyssey", "Ulysses", "Frankenstein", "The Hobbit", "Moby Dick", "Catch-22")
_POSITIONS = ("goalkeeper", "striker", "left winger", "right winger", "center midfielder", "fullback")
# theme: (pool, intro, holding phrase, swap verb, end clause, state verb, choice format)
_THEMES = {
    "ball": (
        _COLORS,
        "are playing a game. At the start of the game, they are each holding a ball",
        "has a {} ball",
        "swap balls",
        "At the end of the game, which ball does {} have?",
        "has",
        "{} ball",
    ),
    "present": (
        _COLORS,
        "are holding a white elephant gift exchange. At the start of the event, they are "
        "each holding a present of a different color",
        "has a {} present",
        "swap their gifts",
        "At the end of the event, which present does {} have?",
        "has",
        "{} present",
    ),
    "book": (
        _BOOKS,
        "are friends who trade books. At the start of the semester, they each buy one new book",
        "gets {}",
        "swap books",
        "At the end of the semester, which book does {} have?",
        "has",
        "{}",
    ),
    "dance": (
        tuple(n for n in NAMES if n in ("Hugo", "Rosa", "Ivan", "Olga", "Pablo", "Wendy", "Kenji", "Hana")),
        "are dancers at a square dance. At the start of a song, they each have a partner",
        "is dancing with {}",
        "switch partners",
        "At the end of the dance, who is {} dancing with?",
        "is with",
        "{}",
    ),
    "soccer": (
        _POSITIONS,
        "are on the same team in a soccer match. At the start of the match, they are each assigned to a position",
        "is playing {}",
        "trade positions",
        "At the end of the match, which position is {} playing?",
        "plays",
        "{}",
    ),
}


def _tracking(rng: random.Random, difficulty: int) -> tuple[str, str, str, list[str]]:
    pool, intro, hold, swap, end, verb, fmt = _THEMES[rng.choice(sorted(_THEMES))]
    people = rng.sample([n for n in NAMES if n not in pool], 3)
    items = rng.sample(pool, 3)
    have = dict(zip(people, items))
    holds = [f"{p} {hold.format(x)}" for p, x in have.items()]
    q = [
        f"{people[0]}, {people[1]}, and {people[2]} {intro}: {holds[0]}, {holds[1]}, and {holds[2]}.",
        "As time goes on, pairs of them trade.",
    ]

    def state() -> str:
        return ", ".join(f"{p} {verb} {x}" for p, x in have.items())

    r = [f"At the start, {state()}."]
    for i in range(difficulty):
        a, b = rng.sample(people, 2)
        q.append(f"{_seq_word(i, difficulty)}, {a} and {b} {swap}.")
        have[a], have[b] = have[b], have[a]
        r.append(f"After {a} and {b} swap, {state()}.")
    asked = rng.choice(people)
    options = rng.sample(items, 3)
    letter = LETTERS[options.index(have[asked])]
    q.append(end.format(asked) + " " + _choices_text([fmt.format(o) for o in options]))
    r.append(f"So at the end {asked} {verb} {have[asked]}, which is ({letter}). So the answer is ({letter}).")
    return " ".join(q), " ".join(r), letter, list(LETTERS[:3])


# --- other: date arithmetic with real calendar maths -------------------------------------------------

_EVENTS = ("the exam", "the party", "the concert", "the meeting", "the trip", "the game", "the wedding")


def _fmt(d: dt.date) -> str:
    return d.strftime("%m/%d/%Y")


def _shift(d: dt.date, days: int) -> tuple[dt.date, str]:
    """Move `days` (signed) from `d`; the text shows each month boundary it crosses."""
    n, back = abs(days), days < 0
    head = f"{n} day{'s' * (n != 1)} {'before' if back else 'after'} {_fmt(d)}"
    parts, cur, left = [], d, n
    while True:
        if back:
            hop = cur.day  # reaching the last day of the previous month
        else:
            hop = calendar.monthrange(cur.year, cur.month)[1] - cur.day + 1  # reaching day 1 of the next month
        if hop > left:
            break
        nxt = cur + dt.timedelta(days=-hop if back else hop)
        month = nxt if back else cur
        length = calendar.monthrange(month.year, month.month)[1]
        why = f"{month.strftime('%B %Y')} has {length} days"
        parts.append(f"{'' if not parts else 'then '}{hop} days {'back' if back else 'later'} is {_fmt(nxt)} ({why})")
        cur, left = nxt, left - hop
    end = d + dt.timedelta(days=days)
    if not parts:
        return end, f"{head} is {_fmt(end)}."
    if left:
        parts.append(f"then {left} more day{'s' * (left != 1)} {'back ' if back else ''}is {_fmt(end)}")
    return end, f"{head}: " + ", ".join(parts) + "."


def _offset(rng: random.Random) -> tuple[int, str]:
    """A signed day offset and how it is said ('10 days', '2 weeks', 'one day')."""
    if rng.random() < 0.3:
        w = rng.randint(1, 4)
        return 7 * w * rng.choice((-1, 1)), ("one week" if w == 1 else f"{w} weeks")
    n = rng.randint(2, 28)
    return n * rng.choice((-1, 1)), f"{n} days"


def _date(rng: random.Random, difficulty: int) -> tuple[str, str, str, list[str]]:
    today = dt.date(1990, 1, 1) + dt.timedelta(days=rng.randint(0, 40 * 365))
    said = _fmt(today) if rng.random() < 0.6 else today.strftime("%B ") + f"{today.day}, {today.year}"
    q, r = [f"Today is {said}."], [f"Today is {_fmt(today)}."]
    cur, steps = today, []
    if difficulty == 1:
        days, amount = _offset(rng)
        q.append(f"What is the date {amount} {'ago' if days < 0 else 'from today'} in MM/DD/YYYY?")
        steps.append((days, amount))
    else:
        events = rng.sample(_EVENTS, difficulty)
        for i, ev in enumerate(events):
            days, amount = _offset(rng)
            if i == 0:
                q.append(
                    f"{ev.capitalize()} was {amount} ago." if days < 0 else f"{ev.capitalize()} is {amount} from today."
                )
            else:
                q.append(f"{ev.capitalize()} is {amount} {'before' if days < 0 else 'after'} {events[i - 1]}.")
            steps.append((days, amount))
        q.append(f"What is the date of {events[-1]} in MM/DD/YYYY?")
    for days, amount in steps:
        if "week" in amount:
            r.append(f"{amount.capitalize()} is {abs(days)} days.")
        cur, text = _shift(cur, days)
        r.append(text[0].upper() + text[1:])
    wrong = {cur + dt.timedelta(days=k) for k in (-1, 1, -7, 7, -10, 10)}
    wrong |= {today - (cur - today)} | {dt.date(cur.year + k, cur.month, min(cur.day, 28)) for k in (-1, 1)}
    wrong.discard(cur)
    options = [cur] + rng.sample(sorted(wrong), rng.choice((3, 4)))
    rng.shuffle(options)
    letter = LETTERS[options.index(cur)]
    q.append(_choices_text([_fmt(o) for o in options]))
    r.append(f"{_fmt(cur)} is ({letter}). So the answer is ({letter}).")
    return " ".join(q), " ".join(r), letter, list(LETTERS[: len(options)])


# --- commonsense: yes/no questions over a small hand-checked table of true animal facts --------------

# name: (class, typical adult mass in kg or None when it varies too much, mass as said, can fly, lays eggs)
# None in a yes/no column means "not clear-cut" (chickens flutter, some snakes bear live young): never asked.
ANIMALS: dict[str, tuple[str, float | None, str, bool | None, bool | None]] = {
    "mouse": ("mammal", 0.02, "20 grams", False, False),
    "rat": ("mammal", 0.3, "300 grams", False, False),
    "rabbit": ("mammal", 2, "2 kg", False, False),
    "cat": ("mammal", 4, "4 kg", False, False),
    "sheep": ("mammal", 70, "70 kg", False, False),
    "horse": ("mammal", 500, "500 kg", False, False),
    "giraffe": ("mammal", 1000, "1,000 kg", False, False),
    "elephant": ("mammal", 5000, "5,000 kg", False, False),
    "blue whale": ("mammal", 100000, "100,000 kg", False, False),
    "dolphin": ("mammal", 200, "200 kg", False, False),
    "lion": ("mammal", 180, "180 kg", False, False),
    "kangaroo": ("mammal", 60, "60 kg", False, False),
    "bat": ("mammal", None, "", True, False),
    "platypus": ("mammal", 1.5, "1.5 kg", False, True),
    "eagle": ("bird", 5, "5 kg", True, True),
    "sparrow": ("bird", 0.03, "30 grams", True, True),
    "pigeon": ("bird", 0.3, "300 grams", True, True),
    "hummingbird": ("bird", 0.004, "4 grams", True, True),
    "owl": ("bird", None, "", True, True),
    "emperor penguin": ("bird", 30, "30 kg", False, True),
    "ostrich": ("bird", 100, "100 kg", False, True),
    "emu": ("bird", 40, "40 kg", False, True),
    "kiwi": ("bird", 2.5, "2.5 kg", False, True),
    "chicken": ("bird", 2.5, "2.5 kg", None, True),
    "crocodile": ("reptile", 400, "400 kg", False, True),
    "turtle": ("reptile", None, "", False, True),
    "frog": ("amphibian", None, "", False, True),
    "salmon": ("fish", 5, "5 kg", False, True),
    "goldfish": ("fish", None, "", False, True),
    "butterfly": ("insect", 0.0005, "half a gram", True, True),
    "mosquito": ("insect", None, "", True, True),
    "housefly": ("insect", None, "", True, True),
    "spider": ("arachnid", None, "", False, True),
}
_CLASSES = ("mammal", "bird", "reptile", "fish", "insect")
_MASS_RATIO = 5  # compare only animals whose typical masses differ at least 5-fold: true for typical adults


def _a(name: str) -> str:
    return ("an " if name[0] in "aeiou" else "a ") + name


def _fact(rng: random.Random, want: bool) -> tuple[str, str, str]:
    """One fact with truth `want`: (question form, 'is it true that' clause, rationale sentence)."""
    while True:
        kind = rng.choice(("fly", "eggs", "class", "heavier"))
        x = rng.choice(sorted(ANIMALS))
        cls, mass, said, fly, eggs = ANIMALS[x]
        ax, Ax = _a(x), _a(x).capitalize()
        if kind == "fly" and fly is not None and fly == want:
            why = f"{Ax} is {_a(cls)} that {'can' if fly else 'cannot'} fly."
            return f"Can {ax} fly?", f"{ax} can fly", why
        if kind == "eggs" and eggs is not None and eggs == want:
            if cls == "mammal":
                why = (
                    f"{Ax} is one of the few mammals that lay eggs."
                    if eggs
                    else f"{Ax} is a mammal that gives birth to live young, so it does not lay eggs."
                )
            else:
                why = f"{Ax} is {_a(cls)}, and it lays eggs."
            return f"Does {ax} lay eggs?", f"{ax} lays eggs", why
        if kind == "class":
            other = cls if want else rng.choice([c for c in _CLASSES if c != cls])
            why = f"{Ax} is {_a(cls)}{'' if want else ', not ' + _a(other)}."
            return f"Is {ax} {_a(other)}?", f"{ax} is {_a(other)}", why
        if kind == "heavier" and mass is not None:
            ys = [y for y, v in ANIMALS.items() if v[1] and max(mass, v[1]) / min(mass, v[1]) >= _MASS_RATIO]
            y = rng.choice(sorted(ys))
            ymass, ysaid = ANIMALS[y][1], ANIMALS[y][2]
            word = rng.choice(("heavier", "lighter"))
            if ((mass > ymass) == (word == "heavier")) != want:
                continue
            pick = x if (mass > ymass) == (word == "heavier") else y
            why = f"{Ax} weighs about {said}, and {_a(y)} weighs about {ysaid}, so {_a(pick)} is {word}."
            return f"Is {ax} {word} than {_a(y)}?", f"{ax} is {word} than {_a(y)}", why


def _commonsense(rng: random.Random, difficulty: int) -> tuple[str, str, str, None]:
    answer = rng.choice(("yes", "no"))
    if difficulty == 1:
        q, _, why = _fact(rng, answer == "yes")
        return q, f"{why} So the answer is {answer}.", answer, None
    # a conjunction of `difficulty` facts: true only when every fact is true
    truths = [True] * difficulty
    if answer == "no":
        for i in rng.sample(range(difficulty), rng.randint(1, difficulty)):
            truths[i] = False
    facts: list[tuple[str, str, str]] = []
    for t in truths:
        fact = _fact(rng, t)
        while any(fact[1] == f[1] for f in facts):  # never repeat a clause inside one question
            fact = _fact(rng, t)
        facts.append(fact)
    q = "Is it true that " + ", ".join(f[1] for f in facts[:-1]) + f" and {facts[-1][1]}?"
    verdict = "All parts are true" if answer == "yes" else "Not every part is true"
    return q, " ".join(f[2] for f in facts) + f" {verdict}, so the answer is {answer}.", answer, None


# --- suite -------------------------------------------------------------------------------------------

_GENERATORS: dict[str, Callable[[random.Random, int], tuple[str, str, str, list[str] | None]]] = {
    "synth_arithmetic": _arithmetic,
    "synth_last_letter": _last_letter,
    "synth_coin_flip": _coin_flip,
    "synth_tracking": _tracking,
    "synth_date": _date,
    "synth_commonsense": _commonsense,
}


def generate(dataset: str, n: int, seed: int, difficulty: int) -> list[Example]:
    """`n` distinct questions (by text) of one synthetic family, each with one correct rule rationale.

    Pure and deterministic: the same (dataset, n, seed, difficulty) gives the same list on every machine.
    Raises ConfigError for an unknown dataset, a difficulty below 1, or when the family cannot make
    `n` distinct questions at this difficulty.
    """
    if dataset not in SYNTH:
        raise ConfigError(f"unknown synthetic dataset {dataset!r}; choose from {', '.join(SYNTH)}")
    if difficulty < 1:
        raise ConfigError(f"difficulty must be >= 1, got {difficulty}")
    info, make = SYNTH[dataset], _GENERATORS[dataset]
    rng = random.Random(f"prada-synth/{dataset}/{seed}/{difficulty}")  # str seeds are stable across runs
    seen: set[str] = set()
    out: list[Example] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise ConfigError(
                f"{dataset}: only {len(out)} distinct questions found at difficulty {difficulty}; "
                f"ask for fewer than {n} or raise the difficulty"
            )
        question, rationale, answer, choices = make(rng, difficulty)
        if question in seen:
            continue
        seen.add(question)
        out.append(
            Example(
                question=question,
                answer=answer,
                answer_type=info.answer_type,
                domain=info.domain,
                dataset=dataset,
                id=f"{dataset}-{len(out):05d}",
                choices=choices,
                rationales=[Rationale(text=rationale, answer=answer, correct=True, teacher=TEACHER)],
            )
        )
    return out


def _refuse_foreign_summary(path: Path) -> None:
    """`data synth --out` rewrites its own summary.json only, never a user's file of that name."""
    if not path.exists():
        return
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        ours = isinstance(found, dict) and isinstance(found.get("synth"), dict)
    except (OSError, UnicodeDecodeError, ValueError, TypeError):
        ours = False
    if not ours:
        raise ConfigError(
            f"{path}: exists and was not written by `prada data synth`; nothing was written. "
            f"Give another --out (or move that file away)"
        )


def build_synth(
    out_dir: Path,
    seed: int = 0,
    n_train: int = 300,
    n_test: int = 100,
    difficulty: int = 1,
    datasets: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """Write `out_dir/<key>/{train,test}.jsonl` and `out_dir/summary.json` for the synthetic suite.

    Train and test are disjoint slices of one pool of distinct questions. Returns the summary dict
    (`{"datasets": {KEY: {domain, n_train, n_test, n_train_with_correct_rationale, teacher_accuracy}}}`,
    plus a `synth` entry recording the knobs).
    """
    keys = list(SYNTH) if datasets is None else list(datasets)
    for key in keys:
        if key not in SYNTH:
            raise ConfigError(f"unknown synthetic dataset {key!r}; choose from {', '.join(SYNTH)}")
    if n_train < 0 or n_test < 0:
        raise ConfigError(f"n_train and n_test must be >= 0, got {n_train} and {n_test}")
    out_dir = Path(out_dir)
    _refuse_foreign_summary(out_dir / "summary.json")
    summary: dict = {"datasets": {}}
    for key in tqdm(keys, desc="synth datasets", unit="dataset", disable=hidden(progress)):
        pool = generate(key, n_train + n_test, seed, difficulty)
        # late draws of a nearly exhausted family are skewed: shuffle so train and test are exchangeable
        random.Random(f"prada-synth-split/{key}/{seed}/{difficulty}").shuffle(pool)
        splits = {"train": pool[:n_train], "test": pool[n_train:]}
        for split, items in splits.items():
            items = [dataclasses.replace(e, id=f"{key}-{split}-{i:05d}") for i, e in enumerate(items)]
            write_examples(out_dir / key / f"{split}.jsonl", items)
        summary["datasets"][key] = {
            "domain": SYNTH[key].domain,
            "n_train": n_train,
            "n_test": n_test,
            "n_train_with_correct_rationale": n_train,
            "teacher_accuracy": 100.0,
        }
    summary["synth"] = {"seed": seed, "difficulty": difficulty, "n_train": n_train, "n_test": n_test}
    atomic_write_json(out_dir / "summary.json", summary)
    return summary
