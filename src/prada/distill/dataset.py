"""The distillation set: which examples are labelled sources, which questions are unlabelled targets, which are tests.

Reads a built data folder plus custom files, and applies the run's dataset/domain selection.
Loading only reads; `prepare_data` is the step that builds a benchmark folder, and commands call it
first. Target examples lose their answers and rationales here, so nothing downstream can leak them
into a loss.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

from prada.config import DataConfig
from prada.data.benchmarks import NO_BENCHMARK, benchmark
from prada.data.hub import read_example_file
from prada.data.schema import Example, read_examples
from prada.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass
class DistillationSet:
    source_train: list[Example]
    """Labelled examples (with rationales) of the source domains."""
    target_questions: list[Example]
    """Unlabelled questions of the target domains: answer and rationales blanked."""
    test_sets: dict[str, list[Example]] = field(default_factory=dict)
    """dataset key -> test examples (source and target datasets)."""
    domains: list[str] = field(default_factory=list)
    """Domain label order of the adversary (sources then targets, each sorted)."""
    source_domains: list[str] = field(default_factory=list)
    target_domains: list[str] = field(default_factory=list)


def _data_folder(cfg: DataConfig) -> tuple[Path | None, bool]:
    """The config's data folder and whether it is ready to read (errors for a folder that can never be).

    A `data.data_dir` the user names is built into only when it is missing, empty, or an interrupted
    build of the same benchmark (its own dataset folders, no summary.json yet, which is written last).
    Any other folder is an error: a benchmark is never written into a user's files and trained on silently.
    """
    given = Path(cfg.data_dir) if cfg.data_dir else None
    if given is not None and given.exists() and not given.is_dir():
        raise ConfigError(
            f"data.data_dir={given}: is a file, not a data folder; "
            "put a single JSONL file in data.train_files / data.test_files instead"
        )
    if cfg.benchmark == NO_BENCHMARK:
        if given is not None and not given.exists():
            raise ConfigError(f"data.data_dir={given}: no such folder (with data.benchmark=none nothing is built)")
        return given, True
    from prada.io import cache_root

    bench = benchmark(cfg.benchmark)
    folder = given or cache_root() / "data" / bench.folder(cfg)
    if (folder / "summary.json").exists():
        return folder, True
    own = bench.datasets
    foreign = (
        sorted(p.name for p in folder.iterdir() if p.name not in own and not p.name.startswith("."))
        if folder.is_dir()
        else []
    )
    if foreign:
        raise ConfigError(
            f"data.data_dir={folder}: no summary.json, and it holds {foreign[:5]} besides any {cfg.benchmark} datasets, "
            f"so the {cfg.benchmark} benchmark is not built into it. A folder of your own <dataset>/train.jsonl files: "
            f"set data.benchmark=none. A fresh {cfg.benchmark} suite: name a new or empty folder (or "
            f"`prada {bench.command} --out DIR`)"
        )
    return folder, False


def prepare_data(cfg: DataConfig) -> Path | None:
    """Build the config's benchmark folder if it is not built yet (the synthetic suite, or the ftcot12
    import); returns the folder. The explicit data step: `prada train`, `eval`, `explain` and `run`
    call it first, so that loading (`load_distillation_set`) only ever reads."""
    folder, ready = _data_folder(cfg)
    if ready:
        return folder
    benchmark(cfg.benchmark).build(folder, cfg)
    return folder


def data_folder(cfg: DataConfig) -> Path | None:
    """The config's built data folder, read only: a benchmark not built yet is an error saying how to build it."""
    folder, ready = _data_folder(cfg)
    if not ready:
        raise ConfigError(
            f"data.data_dir={folder}: the {cfg.benchmark} data is not built there yet; `prada train` and `prada run` "
            f"build it first, or run `prada {benchmark(cfg.benchmark).command} --out {folder}`"
        )
    return folder


def _read_split(folder: Path, split: str) -> dict[str, list[Example]]:
    out = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        f = sub / f"{split}.jsonl"
        if f.exists():
            out[sub.name] = read_examples(f)
            stray = next((e for e in out[sub.name] if e.dataset != sub.name), None)
            if stray is not None:  # the folder name is the dataset key everything downstream uses
                raise DataError(
                    f"example {stray.id!r} says dataset {stray.dataset!r} but sits in the folder of dataset "
                    f"{sub.name!r}; a data folder keeps each dataset's examples under <dataset>/",
                    str(f),
                    field="dataset",
                )
    return out


def _cap(examples: list[Example], n: int, seed: int) -> list[Example]:
    if n <= 0 or len(examples) <= n:
        return examples
    rng = random.Random(seed)
    return sorted(rng.sample(examples, n), key=examples.index)


TEST_SAMPLE_SEED = 0


def _test_cap(cfg: DataConfig, is_source: bool) -> int:
    return (
        cfg.max_source_test_per_dataset if is_source and cfg.max_source_test_per_dataset else cfg.max_test_per_dataset
    )


def answer_priors(cfg: DataConfig) -> dict[str, str]:
    """Each dataset's most frequent gold answer in its train split (ties: the smallest), for the `prior` baseline.

    A reference for chance, not a method: target datasets' train answers count too, which no trained
    method ever sees.
    """
    from collections import Counter

    folder = data_folder(cfg)
    train_by_ds = _read_split(folder, "train") if folder else {}
    entries = [*cfg.train_files, *cfg.test_files]  # hub mappings may be scoped to one of them
    for path in cfg.train_files:
        for ex in read_example_file(path, cfg.hub_columns, cfg.hub_values, "train", entries):
            train_by_ds.setdefault(ex.dataset, []).append(ex)
    priors = {}
    for ds, exs in train_by_ds.items():
        counts = Counter(e.answer for e in exs if e.answer)
        if counts:
            priors[ds] = min(counts, key=lambda a: (-counts[a], a))
    return priors


def warn_trained_test_questions(tests: dict[str, list[Example]], train: list[Example]) -> int:
    """Warn, naming them, about test questions that also occur in some train file (scores would be inflated)."""
    from prada.data.dedup import find_overlaps

    n = 0
    for ds, exs in tests.items():
        overlaps = find_overlaps(exs, train)
        n += len(overlaps)
        if overlaps:
            named = ", ".join(
                f"{exs[o.test_index].id or o.test_index} ~ {train[o.train_index].dataset}/"
                f"{train[o.train_index].id or o.train_index}"
                for o in overlaps[:5]
            )
            log.warning(
                "data: %d of %d test questions of %s also occur in a train split (%s%s); their accuracy "
                "measures memory, not reasoning: remove them from the test file",
                len(overlaps),
                len(exs),
                ds,
                named,
                ", ..." if len(overlaps) > 5 else "",
            )
    return n


def load_distillation_set(cfg: DataConfig, seed: int = 0) -> DistillationSet:
    """Select train/target/test examples by dataset key and domain, per the config."""
    folder = data_folder(cfg)
    train_by_ds = _read_split(folder, "train") if folder else {}
    test_by_ds = _read_split(folder, "test") if folder else {}
    if cfg.datasets:
        unknown = [d for d in cfg.datasets if d not in train_by_ds and d not in test_by_ds]
        if unknown:
            raise ConfigError(
                f"data.datasets: unknown dataset(s) {unknown}; available in {folder}: {sorted(train_by_ds)}"
            )
        train_by_ds = {k: v for k, v in train_by_ds.items() if k in cfg.datasets}
        test_by_ds = {k: v for k, v in test_by_ds.items() if k in cfg.datasets}
    entries = [*cfg.train_files, *cfg.test_files]  # hub mappings may be scoped to one of them
    for path in cfg.train_files:
        for ex in read_example_file(path, cfg.hub_columns, cfg.hub_values, "train", entries):
            train_by_ds.setdefault(ex.dataset, []).append(ex)
    for path in cfg.test_files:
        for ex in read_example_file(path, cfg.hub_columns, cfg.hub_values, "test", entries):
            test_by_ds.setdefault(ex.dataset, []).append(ex)

    for ds, exs in (*train_by_ds.items(), *test_by_ds.items()):
        seen: set[str] = set()
        for ex in exs:
            if ex.id in seen:
                raise DataError(
                    f"dataset {ds!r} holds id {ex.id!r} twice (custom files merged into one dataset?); "
                    "give each line a unique `id` or a distinct `dataset`"
                )
            seen.add(ex.id)
    domain_of = {ex.dataset: ex.domain for exs in (*train_by_ds.values(), *test_by_ds.values()) for ex in exs}
    all_domains = sorted(set(domain_of.values()))
    for key in ("source_domains", "target_domains"):
        unknown = [d for d in getattr(cfg, key) if d not in all_domains]
        if unknown:
            raise ConfigError(f"data.{key}: unknown domain(s) {unknown}; the selected data has {all_domains}")
    targets = sorted(cfg.target_domains)
    sources = sorted(cfg.source_domains) or [d for d in all_domains if d not in targets]
    if not sources:
        raise ConfigError(
            "data.source_domains: no source domain left; keep at least one domain out of data.target_domains"
        )

    source_train, target_questions = [], []
    for ds, exs in sorted(train_by_ds.items()):
        exs = _cap(exs, cfg.max_train_per_dataset, seed)
        if domain_of[ds] in sources:
            source_train += exs
        elif domain_of[ds] in targets:
            # Unlabelled: the adversary sees the question only. Blank the labels here, once.
            target_questions += [replace(e, answer="", rationales=[]) for e in exs]
    usable = [e for e in source_train if any(r.correct or not cfg.only_correct for r in e.rationales)]
    if not usable:
        raise DataError(
            f"no training example with a {'correct ' if cfg.only_correct else ''}rationale in source domains {sources}"
            " (add rationales with `prada teach` or set data.only_correct=false)"
        )
    tests = {  # the same test items for every seed and method: a paired design across the whole experiment
        ds: _cap(exs, _test_cap(cfg, domain_of[ds] in sources), TEST_SAMPLE_SEED)
        for ds, exs in sorted(test_by_ds.items())
        if domain_of[ds] in sources or domain_of[ds] in targets
    }
    if cfg.benchmark == NO_BENCHMARK or cfg.train_files or cfg.test_files:  # built benchmarks are deduplicated at build
        warn_trained_test_questions(tests, [e for exs in train_by_ds.values() for e in exs])
    return DistillationSet(
        source_train=usable,
        target_questions=target_questions,
        test_sets=tests,
        domains=sources + targets,
        source_domains=sources,
        target_domains=targets,
    )
