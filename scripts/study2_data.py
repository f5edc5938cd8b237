"""Build study 2's data folders (docs/results.md, "Study 2"): deterministic, from the synthetic suite and ../shared/data.

    python scripts/study2_data.py --shared ../shared/data --out data/study2

Writes two `data.benchmark=none` folders (each `<dataset>/{train,dev,test}.jsonl` + summary.json):
- `synth2real/`: the reported fold. Labelled sources: five synthetic families at the difficulty that
  matches their real counterparts (domain `synthetic`). Targets: the real ftcot12 counterparts (domain
  `real`); their train questions are the unlabelled target batch (and the oracle's labelled data),
  their test sets are scored whole.
- `difficulty/`: the tuning fold. The same five families at difficulty 1 (domain `easy`, sources)
  and at difficulty 3 (domain `hard`, targets).
`dev.jsonl` of every dataset is carved from its train split before anything trains and is never
trained on: the learning curves (source dev) and the gap check (real dev) read it; no reported number does.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import replace
from pathlib import Path

from prada.data.ftcot12 import build_ftcot12
from prada.data.schema import Example, read_examples, write_examples
from prada.data.synth import generate
from prada.io import atomic_write_json

# synthetic family -> (difficulty matching the real data, real counterparts)
# last letters: 4 words (d=3); coin flip: 4 people (d=3); tracking: 3 objects, 3 swaps (d=3);
# date: one offset from a given day (d=1); arithmetic: MultiArith's two operations (d=1).
FAMILIES: dict[str, tuple[int, tuple[str, ...]]] = {
    "synth_last_letter": (3, ("last_letter_concatenation",)),
    "synth_coin_flip": (3, ("coin_flip",)),
    "synth_tracking": (3, ("tracking_shuffled_objects",)),
    "synth_date": (1, ("date_understanding",)),
    "synth_arithmetic": (1, ("multiarith", "addsub")),
}
N_TRAIN, N_DEV, N_TEST = 400, 100, 100  # per synthetic dataset
REAL_DEV_SHARE = 0.2  # of each real train split, carved as dev (seeded)
N_DEV_CURVE = 40  # dev items per synthetic family read at every learning-curve snapshot
SEED = 0


def _retag(examples: list[Example], dataset: str, domain: str) -> list[Example]:
    return [replace(e, dataset=dataset, domain=domain, id=f"{dataset}-{e.id.rsplit('-', 1)[-1]}") for e in examples]


def _write(folder: Path, dataset: str, splits: dict[str, list[Example]], summary: dict) -> None:
    for split, examples in splits.items():
        write_examples(folder / dataset / f"{split}.jsonl", examples)
    train = splits["train"]
    summary["datasets"][dataset] = {
        "domain": train[0].domain,
        "n_train": len(train),
        "n_dev": len(splits["dev"]),
        "n_test": len(splits["test"]),
        "n_train_with_correct_rationale": sum(any(r.correct for r in e.rationales) for e in train),
    }


def _synth(folder: Path, key: str, difficulty: int, domain: str, summary: dict, name: str) -> None:
    pool = generate(key, N_TRAIN + N_DEV + N_TEST, SEED, difficulty)
    random.Random(f"study2/{key}/{difficulty}").shuffle(pool)
    pool = _retag(pool, name, domain)
    splits = {"train": pool[:N_TRAIN], "dev": pool[N_TRAIN : N_TRAIN + N_DEV], "test": pool[N_TRAIN + N_DEV :]}
    _write(folder, name, splits, summary)


def build(shared: Path, out: Path) -> None:
    real = out / "ftcot12"
    if not (real / "summary.json").exists():
        build_ftcot12(real, source=str(shared))
    # --- reported fold: synthetic (matched difficulty) -> real
    folder, summary = out / "synth2real", {"datasets": {}, "study2": {"seed": SEED, "fold": "synth2real"}}
    for key, (difficulty, counterparts) in FAMILIES.items():
        _synth(folder, key, difficulty, "synthetic", summary, key)
        for name in counterparts:
            train = read_examples(real / name / "train.jsonl")
            random.Random(f"study2/real-dev/{name}").shuffle(train)
            n_dev = round(REAL_DEV_SHARE * len(train))
            splits = {
                "train": _retag(train[n_dev:], name, "real"),
                "dev": _retag(train[:n_dev], name, "real"),
                "test": _retag(read_examples(real / name / "test.jsonl"), name, "real"),
            }
            _write(folder, name, splits, summary)
    atomic_write_json(folder / "summary.json", summary)
    # --- dev files: the learning curves (the first N_DEV_CURVE dev items of each synthetic family) and the gap check
    dev = {name: read_examples(folder / name / "dev.jsonl") for name in summary["datasets"]}
    write_examples(out / "dev-synthetic.jsonl", [e for k, v in dev.items() if k in FAMILIES for e in v[:N_DEV_CURVE]])
    write_examples(out / "dev-real.jsonl", [e for k, v in dev.items() if k not in FAMILIES for e in v])
    # the learning control's pass rule reads the in-distribution test sets of the synthetic families
    tests = [e for k in FAMILIES for e in read_examples(folder / k / "test.jsonl")]
    write_examples(out / "test-synthetic.jsonl", tests)
    # --- tuning fold: difficulty 1 -> 3 of the same families
    folder, summary = out / "difficulty", {"datasets": {}, "study2": {"seed": SEED, "fold": "difficulty"}}
    for key in FAMILIES:
        _synth(folder, key, 1, "easy", summary, f"{key}_d1")
        _synth(folder, key, 3, "hard", summary, f"{key}_d3")
    atomic_write_json(folder / "summary.json", summary)
    print(json.dumps({k: len(v) for k, v in summary.items()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("data/study2"))
    a = parser.parse_args()
    build(a.shared, a.out)


if __name__ == "__main__":
    main()
