"""The ftcot12 benchmark: 12 reasoning datasets, Fine-tune-CoT splits, Zero-shot-CoT teacher rationales.

Inputs (all public, pinned by sha256, see docs/data.md):
- raw dataset files as Zero-shot-CoT ships them (kojima-takeshi188/zero_shot_cot, commit 5ef330f);
- the teacher logs `log/*_zero_shot_cot.log` of that repo: text-davinci-002, greedy, one rationale
  per question of the files above;
- Fine-tune-CoT's split index files (itsnamgyu/reasoning-teacher) for the nine small datasets.

Questions are built exactly as Zero-shot-CoT's `data_reader` built them, so they equal the log's
`Q:` lines; log records are matched to items by whitespace-normalised question text, duplicates one
to one. Teacher logs exist only for the evaluation files of gsm8k (test), aqua (test) and
commonsense_qa (dev), so those three get a seeded 70/30 split of that file (SPLIT_SEED).
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from prada.answers import canonical_number, extract_teacher_answer, is_correct
from prada.data.dedup import NEAR_DUPLICATE_JACCARD, find_overlaps
from prada.data.download import fetch, is_url
from prada.data.registry import FTCOT12
from prada.data.schema import Example, Rationale, write_examples
from prada.errors import DataError
from prada.io import atomic_write_json, iter_jsonl
from prada.progress import hidden
from prada.prompts import COT_TRIGGER

log = logging.getLogger(__name__)

TEACHER = "text-davinci-002/zero-shot-cot"
SPLIT_SEED = 0
TRAIN_FRACTION = 0.7
ZERO_SHOT_COT_URL = "https://raw.githubusercontent.com/kojima-takeshi188/zero_shot_cot/5ef330f/"
FINE_TUNE_COT_URL = (
    "https://raw.githubusercontent.com/itsnamgyu/reasoning-teacher/f8471666e5889e517c3bed04f9b346a1e6b8929b/data/split/"
)
_ZSC, _SPLIT = "zero_shot_cot/", "fine_tune_cot/split/"

# Relative path (the layout of ../shared/data) -> sha256 of the unmodified upstream file.
FILES: dict[str, str] = {
    "zero_shot_cot/dataset/SingleEq/questions.json": "051507bd2b489c257057b485774a83d2710c23a4bc0f4a58e1822ae2773ef05e",
    "zero_shot_cot/dataset/AddSub/AddSub.json": "21930fa90385c72b5a15f4b9a4dda27276b889ae9ff44285505cdd9fa0a20df8",
    "zero_shot_cot/dataset/MultiArith/MultiArith.json": "dc9db1b6cc68b1ecc2dec830d15aaf8c9a0932aa31d5ffce88ef3628179d36f4",
    "zero_shot_cot/dataset/grade-school-math/test.jsonl": "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
    "zero_shot_cot/dataset/AQuA/test.json": "de41581881ef95c5588c44ddc701c77fd480839241dd422a0d181262af24520c",
    "zero_shot_cot/dataset/SVAMP/SVAMP.json": "5be77703a6d891ae476d7c082787ad361392aa02453b132516cdd5f4e7934e3e",
    "zero_shot_cot/dataset/Bigbench_Date/task.json": "ff716f0e399109146db3a998281c39954907b78268a9b633a95582d63847822f",
    "zero_shot_cot/dataset/Bigbench_object_tracking/task.json": "74b74d3c8827c0387a3f24ee9efa7edd90b2d53af3daacb9961341af66f750a0",
    "zero_shot_cot/dataset/last_letters/last_letters.json": "60e8d092d0a6423d3256e87e0c249b69aefea4cd27985082095fa4e93931fb02",
    "zero_shot_cot/dataset/coin_flip/coin_flip.json": "68cf201737a1463ef6bed5419622805a8934d92bff6a28a9dfbf83be3135ba5a",
    "zero_shot_cot/dataset/CommonsenseQA/dev_rand_split.jsonl": "3210497fdaae614ac085d9eb873dd7f4d49b6f965a93adadc803e1229fd8a02a",
    "zero_shot_cot/dataset/StrategyQA/task.json": "60af9081fed20102fd8bb1e02dc7d9f12238efcba33e4c1a56b4d61cb6409803",
    "zero_shot_cot/log/singleeq_zero_shot_cot.log": "51bbcb0c0fcc8f5696cd4cd74d89e46d7e5d9ff8fb2e639c1664254a2ecde251",
    "zero_shot_cot/log/addsub_zero_shot_cot.log": "5a35a7d04ad18f17a5918ba9f456ef85598ffb4ab340d40abd510b316ec65ce4",
    "zero_shot_cot/log/multiarith_zero_shot_cot.log": "e2e3416d5f376b84513847b0ed2ac40fcfbe424b8279a18f0b6c980ff75fa351",
    "zero_shot_cot/log/gsm8k_zero_shot_cot.log": "cfb2d43b29762ca5fb09856899a6f6595c7deda6ff73c5e8a3becb8d791c54c4",
    "zero_shot_cot/log/aqua_zero_shot_cot.log": "743315681523f6c459bb9dee0d106e1bbf813059bb0ecc3a75a9bbf8917766ad",
    "zero_shot_cot/log/svamp_zero_shot_cot.log": "37043ef358b75e108860746c533d0c9be0f307ec3373959524778f1b8af5a75a",
    "zero_shot_cot/log/date_understanding_zero_shot_cot.log": "14090fec37b29d4b7053f6ccc8d3865b8ffd949d9d2f21ae71c55f145cb087c8",
    "zero_shot_cot/log/shuffled_objects_zero_shot_cot.log": "1bb4b95719d37b0cde221fa6d7fe40ab0aeb894d87973f48c6e1675b25301aa5",
    "zero_shot_cot/log/last_letters_zero_shot_cot.log": "31e13b33aed4f1c8a920b10914fb31bc0965089afc714d0e72cf78a2f17387b5",
    "zero_shot_cot/log/coin_flip_zero_shot_cot.log": "6c5cd500498686106fad37b8ce85bed2bd26a790b6b1aaa8bec382a0d1103048",
    "zero_shot_cot/log/commonsensqa_zero_shot_cot.log": "f8027dc6f4c85045ad7567dc71a9b5a4d69fb75af7cdf08ef809fcea617a2757",
    "zero_shot_cot/log/strategyqa_zero_shot_cot.log": "9268254c7c2d86a96b0346d64f5b782440b17ded142589d160ebb39e53fde5c9",
    "fine_tune_cot/split/single_eq__default.json": "d46feb082615045ea0909c5ed062ef85f29ba95223cbca39e0bfbb1ad1b5e1b7",
    "fine_tune_cot/split/addsub__default.json": "1a6f70a39554084978a44439db0b661b039ce4dd2c09572d2ff9f44f5ef668d0",
    "fine_tune_cot/split/multiarith__default.json": "f2f47aeb18026cb3d1909b38b8828693aeaf624af3282d8021dbee32008a1409",
    "fine_tune_cot/split/svamp__default.json": "fae6cc3a5c50952da78b66991182be507c8585e6a59954e03bd997488608ab1f",
    "fine_tune_cot/split/date_understanding__default.json": "5fbfdd1f0db941dce6accd7f43316eda2a2254f3a80f9a3a045f5a19bfb04578",
    "fine_tune_cot/split/tracking_shuffled_objects__default.json": "6f2a4637d6e0692297e5eaa66bf53518445e1fbae1d94f28daae0040b7a1156a",
    "fine_tune_cot/split/last_letter_concatenation__default.json": "a5f7ffe4a1a1e0181cbd9d00259d34f980c0073efe8a3ed25f69433cfb74a3a4",
    "fine_tune_cot/split/coin_flip__default.json": "a5f7ffe4a1a1e0181cbd9d00259d34f980c0073efe8a3ed25f69433cfb74a3a4",
    "fine_tune_cot/split/strategy_qa__default.json": "0857d069a693a83c20466971b7e522b3c90c3258146c9b9461df98e4d2468de1",
}


def upstream_url(rel: str) -> str:
    """The public address of a file of FILES (its path relative to a ../shared/data-like folder)."""
    if rel.startswith(_ZSC):
        return ZERO_SHOT_COT_URL + rel[len(_ZSC) :]
    if rel.startswith(_SPLIT):
        return FINE_TUNE_COT_URL + rel[len(_SPLIT) :]
    raise KeyError(rel)


# ----------------------------------------------------------------------------- raw dataset readers


@dataclass
class RawItem:
    """One dataset item as Zero-shot-CoT read it. `options` (Date only) maps choice text -> score."""

    question: str
    answer: str
    choices: list[str] | None = None
    options: dict[str, int] | None = None


def _gold_number(value: object) -> str:
    text = str(value).strip()
    return canonical_number(text) or text


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON ({e.msg})", str(path), e.lineno) from None


def _read_jsonl(path: Path) -> list[dict]:
    return [row for _, row in iter_jsonl(path)]


def _letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def read_math_json(path: Path) -> list[RawItem]:
    """SingleEq, AddSub, MultiArith: a JSON list of {sQuestion, lSolutions}."""
    return [RawItem(d["sQuestion"].strip(), _gold_number(d["lSolutions"][0])) for d in _read_json(path)]


def read_gsm8k(path: Path) -> list[RawItem]:
    return [RawItem(d["question"].strip(), _gold_number(d["answer"].split("#### ")[-1])) for d in _read_jsonl(path)]


def read_aqua(path: Path) -> list[RawItem]:
    items = []
    for d in _read_jsonl(path):
        choice = ("(" + "(".join(d["options"])).replace("(", " (").replace(")", ") ")
        items.append(
            RawItem(d["question"].strip() + " Answer Choices:" + choice, d["correct"], _letters(len(d["options"])))
        )
    return items


def read_svamp(path: Path) -> list[RawItem]:
    return [
        RawItem(d["Body"].strip() + " " + d["Question"].strip(), _gold_number(d["Answer"])) for d in _read_json(path)
    ]


def read_date(path: Path) -> list[RawItem]:
    """Bigbench Date: the stem only; choices are lettered later in the order of the log's question."""
    items = []
    for d in _read_json(path)["examples"]:
        options = dict(d["target_scores"])
        gold = next(t for t, s in options.items() if s == 1)
        items.append(RawItem(d["input"].strip(), gold, _letters(len(options)), options))
    return items


def read_tracking(path: Path) -> list[RawItem]:
    items = []
    for d in _read_json(path)["examples"]:
        letters = _letters(len(d["target_scores"]))
        choice = "\nWhich choice is true ? Answer Choices:"
        gold = ""
        for letter, (text, score) in zip(letters, d["target_scores"].items()):
            choice += f" ({letter}) {text}"
            gold = letter if score == 1 else gold
        items.append(RawItem(d["input"].strip() + " " + choice, gold, letters))
    return items


def read_examples_json(path: Path) -> list[RawItem]:
    """last_letters, coin_flip: {"examples": [{question, answer}]}."""
    return [RawItem(d["question"], d["answer"]) for d in _read_json(path)["examples"]]


def read_csqa(path: Path) -> list[RawItem]:
    items = []
    for d in _read_jsonl(path):
        q = d["question"]
        choice = "Answer Choices:" + "".join(f" ({c['label']}) {c['text']}" for c in q["choices"])
        items.append(RawItem(q["stem"].strip() + " " + choice, d["answerKey"], [c["label"] for c in q["choices"]]))
    return items


def read_strategyqa(path: Path) -> list[RawItem]:
    return [
        RawItem(d["input"].strip(), "yes" if int(d["target_scores"]["Yes"]) == 1 else "no")
        for d in _read_json(path)["examples"]
    ]


@dataclass(frozen=True)
class Source:
    raw: str
    log: str
    reader: Callable[[Path], list[RawItem]]
    split: str | None  # Fine-tune-CoT split file, or None for the seeded 70/30 split


def _src(raw: str, log_name: str, reader, split_key: str | None) -> Source:
    split = f"{_SPLIT}{split_key}__default.json" if split_key else None
    return Source(f"{_ZSC}dataset/{raw}", f"{_ZSC}log/{log_name}_zero_shot_cot.log", reader, split)


SOURCES: dict[str, Source] = {
    "single_eq": _src("SingleEq/questions.json", "singleeq", read_math_json, "single_eq"),
    "addsub": _src("AddSub/AddSub.json", "addsub", read_math_json, "addsub"),
    "multiarith": _src("MultiArith/MultiArith.json", "multiarith", read_math_json, "multiarith"),
    "gsm8k": _src("grade-school-math/test.jsonl", "gsm8k", read_gsm8k, None),
    "aqua": _src("AQuA/test.json", "aqua", read_aqua, None),
    "svamp": _src("SVAMP/SVAMP.json", "svamp", read_svamp, "svamp"),
    "date_understanding": _src("Bigbench_Date/task.json", "date_understanding", read_date, "date_understanding"),
    "tracking_shuffled_objects": _src(
        "Bigbench_object_tracking/task.json", "shuffled_objects", read_tracking, "tracking_shuffled_objects"
    ),
    "last_letter_concatenation": _src(
        "last_letters/last_letters.json", "last_letters", read_examples_json, "last_letter_concatenation"
    ),
    "coin_flip": _src("coin_flip/coin_flip.json", "coin_flip", read_examples_json, "coin_flip"),
    "commonsense_qa": _src("CommonsenseQA/dev_rand_split.jsonl", "commonsensqa", read_csqa, None),
    "strategy_qa": _src("StrategyQA/task.json", "strategyqa", read_strategyqa, "strategy_qa"),
}


# ----------------------------------------------------------------------------- teacher log parser


@dataclass
class LogRecord:
    """One Zero-shot-CoT log block: question, stage-1 rationale, stage-2 answer text, log's own scoring."""

    question: str
    rationale: str
    answer_text: str
    pred_after: str
    gt: str
    line: int


_BLOCK_START = re.compile(r"^\*{5,}\n\d+st data\n", re.MULTILINE)
_COT_TRIGGER = f"\nA: {COT_TRIGGER}"
_PRED_BEFORE = "\npred_before : "
_TRIGGER_RE = re.compile(r"direct_answer_trigger='([^']*)'")


def parse_log(text: str, path: str = "<log>") -> list[LogRecord]:
    """Parse a `*_zero_shot_cot.log`; every malformed block raises DataError naming path:line."""
    m = _TRIGGER_RE.search(text)
    if m is None:
        raise DataError("no direct_answer_trigger in the header (not a Zero-shot-CoT log?)", path, 1)
    trigger = m.group(1).replace("\\n", "\n")
    starts = [b.start() for b in _BLOCK_START.finditer(text)] + [len(text)]
    records = []
    line, prev = 2, 0
    for begin, end in zip(starts, starts[1:]):
        block = text[begin:end]
        line += text.count("\n", prev, begin)  # line of "<n>st data"
        prev = begin
        q_at = block.find("\nQ: ")
        a_at = block.find(_COT_TRIGGER, q_at + 1)
        pb_at = block.find(_PRED_BEFORE, a_at + 1)
        pa_at = block.find("\npred_after : ", pb_at + 1)
        if min(q_at, a_at, pb_at, pa_at) < 0:
            raise DataError("expected Q:, A: Let's think step by step., pred_before and pred_after", path, line)
        # Stage 2 printed `trigger + pred`, then `pred_before : pred`: locate the trigger from pred, since
        # the rationale or the stage-2 text itself may repeat the trigger words.
        pred = block[pb_at + len(_PRED_BEFORE) : pa_at]
        t_at = pb_at - len(pred) - len(trigger)
        if t_at <= a_at or block[t_at:pb_at] != trigger + pred:
            t_at = block.rfind(trigger, a_at + 1, pb_at)
        if t_at < 0:
            raise DataError(f"no answer trigger {trigger.strip()!r} after the rationale", path, line)
        pred_after = re.search(r"^pred_after : (.*)$", block, re.MULTILINE)
        gt = re.search(r"^GT : (.*)$", block, re.MULTILINE)
        if pred_after is None or gt is None:
            raise DataError("block has no pred_after or GT line", path, line)
        records.append(
            LogRecord(
                question=block[q_at + 4 : a_at],
                rationale=block[a_at + len(_COT_TRIGGER) : t_at].strip(),
                answer_text=block[t_at + len(trigger) : pb_at],
                pred_after=pred_after.group(1).strip(),
                gt=gt.group(1).strip(),
                line=line,
            )
        )
    return records


def _norm(text: str) -> str:
    return " ".join(text.split())


_CHOICE_RE = re.compile(r"\(([A-Z])\) (.*?)(?= \([A-Z]\) |$)")


def _split_choices(question: str) -> tuple[str, list[tuple[str, str]]]:
    """`stem Answer Choices: (A) x (B) y` -> (stem, [(A, x), (B, y)])."""
    stem, _, rest = question.partition("Answer Choices:")
    return stem, [(m.group(1), m.group(2).strip()) for m in _CHOICE_RE.finditer(_norm(rest))]


# ----------------------------------------------------------------------------- matching


@dataclass
class Matched:
    items: list[Example] = field(default_factory=list)
    n_unmatched: int = 0
    n_rationales: int = 0
    n_correct: int = 0
    n_log_correct: int = 0


def match_log(key: str, raw: list[RawItem], records: list[LogRecord]) -> Matched:
    """Attach each item's teacher rationale (matched by question text, duplicates one to one)."""
    info = FTCOT12[key]
    date = key == "date_understanding"
    pool: dict[str, list[LogRecord]] = defaultdict(list)
    for r in records:
        if date:
            stem, pairs = _split_choices(r.question)
            pool[_norm(stem) + "\x00" + "\x00".join(sorted(t for _, t in pairs))].append(r)
        else:
            pool[_norm(r.question)].append(r)
    out = Matched()
    for i, item in enumerate(raw):
        question, gold = item.question, item.answer
        if date:
            k = _norm(item.question) + "\x00" + "\x00".join(sorted(_norm(t) for t in item.options))
        else:
            k = _norm(item.question)
        candidates = pool.get(k, [])
        record = None
        if candidates:
            if date:
                record = candidates.pop(0)
                question = record.question
                letter_of = {t: letter for letter, t in _split_choices(question)[1]}
                gold = letter_of[_norm(item.answer)]
            else:  # prefer a duplicate the log scored against the same gold
                j = next((j for j, r in enumerate(candidates) if r.gt == gold), 0)
                record = candidates.pop(j)
        elif date:  # no log record: letter the choices in file order
            question = (
                item.question
                + " Answer Choices:"
                + "".join(f" ({letter}) {t}" for letter, t in zip(item.choices, item.options))
            )
            gold = item.choices[list(item.options).index(item.answer)]
        ex = Example(
            question=question,
            answer=gold,
            answer_type=info.answer_type,
            domain=info.domain,
            dataset=key,
            id=f"{key}-{i}",
            choices=item.choices,
        )
        if record is None:
            out.n_unmatched += 1
        else:
            pred = extract_teacher_answer(record.answer_text, info.answer_type, item.choices)
            ok = is_correct(pred, gold, info.answer_type)
            ex.rationales.append(Rationale(text=record.rationale, answer=pred or "", correct=ok, teacher=TEACHER))
            out.n_rationales += 1
            out.n_correct += ok
            out.n_log_correct += record.pred_after == record.gt
        out.items.append(ex)
    if out.n_unmatched:
        log.warning("%s: %d of %d items have no teacher record in the log", key, out.n_unmatched, len(raw))
    return out


# ----------------------------------------------------------------------------- splits and build


def seeded_split(n: int, seed: int = SPLIT_SEED, train_fraction: float = TRAIN_FRACTION) -> dict[str, list[int]]:
    """Shuffle range(n) with random.Random(seed); the first round(train_fraction * n) are train."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_train = round(train_fraction * n)
    return {"train": sorted(order[:n_train]), "test": sorted(order[n_train:])}


def _read_split(path: Path, n: int) -> dict[str, list[int]]:
    split = _read_json(path)
    for name in ("train", "test"):
        idx = split.get(name) if isinstance(split, dict) else None
        if not isinstance(idx, list) or not all(isinstance(i, int) and 0 <= i < n for i in idx):
            raise DataError(f"expected a list of item indices below {n}", str(path), None, name)
    return split


class _Resolver:
    """Maps a relative data path to a local file: a local folder, a mirror URL or the upstream address."""

    def __init__(self, source: str | None, cache_dir: Path | None, progress: bool):
        self.source, self.cache_dir, self.progress = source, cache_dir, progress
        if source is not None and not is_url(source) and not Path(source).is_dir():
            raise DataError("source folder not found (expected a folder laid out like ../shared/data or a URL)", source)

    def __call__(self, rel: str) -> Path:
        if self.source is None:
            return fetch(upstream_url(rel), FILES[rel], self.cache_dir, self.progress)
        if is_url(self.source):
            return fetch(self.source.rstrip("/") + "/" + rel, FILES[rel], self.cache_dir, self.progress)
        return fetch(str(Path(self.source) / rel), None, None)  # local copies are read as they are


def build_dataset(key: str, resolve: Callable[[str], Path]) -> tuple[list[Example], list[Example], dict]:
    """Read, match and split one dataset; returns (train, test, summary row)."""
    src = SOURCES[key]
    raw_path = resolve(src.raw)
    raw = src.reader(raw_path)
    log_path = resolve(src.log)
    records = parse_log(log_path.read_text(encoding="utf-8"), str(log_path))
    m = match_log(key, raw, records)
    split = _read_split(resolve(src.split), len(raw)) if src.split else seeded_split(len(raw))
    train = [m.items[i] for i in split["train"]]
    test = [m.items[i] for i in split["test"]]
    row = {
        "domain": FTCOT12[key].domain,
        "n_train": len(train),
        "n_test": len(test),
        "n_train_with_correct_rationale": sum(any(r.correct for r in e.rationales) for e in train),
        "teacher_accuracy": round(100.0 * m.n_correct / m.n_rationales, 2) if m.n_rationales else 0.0,
        "n_unmatched": m.n_unmatched,
        "n_rationales": m.n_rationales,
        "log_accuracy": round(100.0 * m.n_log_correct / len(records), 2) if records else 0.0,
    }
    return train, test, row


def build_ftcot12(
    out_dir: Path,
    source: str | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    datasets: list[str] | None = None,
) -> dict:
    """Write out_dir/<key>/{train,test}.jsonl for the 12 datasets and out_dir/summary.json; return the summary.

    `source`: None for the upstream public addresses (downloaded once into `cache_dir`, sha256-checked),
    an http(s) base URL of a mirror laid out like ../shared/data, or such a local folder.
    `datasets` restricts the build to some keys (default: all 12).
    """
    from tqdm.auto import tqdm

    keys = list(datasets) if datasets else list(FTCOT12)
    unknown = [k for k in keys if k not in SOURCES]
    if unknown:
        raise DataError(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    out_dir = Path(out_dir)
    resolve = _Resolver(source, Path(cache_dir) if cache_dir is not None else None, progress)
    # every dataset is read, even for a partial build: a test split is deduplicated against all 12
    # train splits, so a dataset's test set is the same whichever others are built beside it
    order = keys + [k for k in SOURCES if k not in keys]  # the asked-for datasets first: their errors come first
    built = {
        key: build_dataset(key, resolve)
        for key in tqdm(order, desc="ftcot12", unit="dataset", disable=hidden(progress))
    }
    all_train = [ex for train, _, _ in built.values() for ex in train]
    summary: dict = {"datasets": {}, "dedup": DEDUP_RULE}
    for key in keys:
        train, test, row = built[key]
        test, removed = drop_trained_questions(test, all_train)
        write_examples(out_dir / key / "train.jsonl", train)
        write_examples(out_dir / key / "test.jsonl", test)
        summary["datasets"][key] = {**row, "n_test": len(test), **removed}
    atomic_write_json(out_dir / "summary.json", summary)
    return summary


DEDUP_RULE = (
    "test questions removed when their normalised text equals a train question of any of the 12 datasets, "
    f"or when token Jaccard >= {NEAR_DUPLICATE_JACCARD} with one that has the same numbers and the same gold answer"
)


def drop_trained_questions(test: list[Example], train: list[Example]) -> tuple[list[Example], dict]:
    """`test` without the problems that occur in `train`, and the counts for summary.json."""
    overlaps = find_overlaps(test, train)
    gone = {o.test_index for o in overlaps}
    by_dataset = Counter(train[o.train_index].dataset for o in overlaps)
    counts = {
        "n_test_removed": len(gone),
        "n_test_removed_exact": sum(o.exact for o in overlaps),
        "n_test_removed_near": sum(not o.exact for o in overlaps),
        "n_test_removed_by_train_of": dict(sorted(by_dataset.items())),
    }
    return [e for i, e in enumerate(test) if i not in gone], counts
