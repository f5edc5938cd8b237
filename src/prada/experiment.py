"""`prada run`: protocol -> one train/eval (and explain) per (method, fold, seed) -> report.

An experiment YAML names the methods, the seeds, a protocol and a `base` RunConfig mapping that every
run shares. Each run lives in `OUT/<name>/runs/<method>__<fold>__seed<k>/`; rerunning the same
experiment reuses finished runs and resumes interrupted ones, so a killed `prada run` loses at most
the steps since the last checkpoint.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import yaml

from prada.config import (
    RunConfig,
    cast_value,
    config_path,
    load_config,
    merge,
    nest,
    parse_overrides,
    read_yaml_mapping,
)
from prada.data.benchmarks import BENCHMARKS, NO_BENCHMARK, known_datasets
from prada.data.registry import name_problem, ordered_domains
from prada.errors import ConfigError, PradaError
from prada.io import atomic_write_text, folder_lock
from prada.methods.registry import METHODS, method_spec
from prada.run_dir import CONFIG, DONE, EVAL, EXPLAIN_JSON, config_differences

PROTOCOLS = ("in-domain", "leave-one-domain-out", "explicit")
RUN_SECTIONS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name not in ("method", "seed"))
IN_DOMAIN_FOLD = "in-domain"


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    """Output folder name: the experiment writes OUT_DIR/<name>/."""
    base: dict = field(default_factory=dict)
    """RunConfig mapping shared by every run (data/student/prompt/adversary/lora/train/eval sections)."""
    methods: list[str] = field(default_factory=lambda: ["zero-shot", "ft-cot", "prada"])
    """Methods to compare, in report order."""
    method_overrides: dict = field(default_factory=dict)
    """Per-method RunConfig overrides, e.g. `{prada: {adversary.lambda_max: 0.3}}` (dotted or nested keys)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """One run per seed (initialisation, data order, the test-set sample when capped)."""
    protocol: str = "leave-one-domain-out"
    """in-domain (every domain is a source) | leave-one-domain-out (each domain in turn is the target) | explicit."""
    folds: list[str] = field(default_factory=list)
    """leave-one-domain-out only: which target domains to run (empty: every domain of the data)."""
    source_domains: list[str] = field(default_factory=list)
    """explicit: labelled source domains (empty: every non-target domain); in-domain: optional restriction."""
    target_domains: list[str] = field(default_factory=list)
    """explicit only: target domains (unlabelled train questions feed the adversary)."""
    out_dir: str = "runs"
    """Parent folder of the experiment folder."""
    explain: bool = True
    """Run `prada explain` on every trained run and link it from the report."""
    explain_per_dataset: int = 64
    """Test questions per dataset whose features `prada explain` probes (0: all)."""
    bootstrap: int = 1000
    """Bootstrap resamples behind every 95% confidence interval."""

    def __post_init__(self) -> None:
        validate_experiment(self)


@dataclass
class PlannedRun:
    """One (method, fold, seed) cell of the experiment."""

    method: str
    fold: str
    seed: int
    config: RunConfig
    dir: Path

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def trains(self) -> bool:
        return method_spec(self.method).train


# --- loading and validation ----------------------------------------------------------------------------


def default_config_path() -> Path:
    """The embedded offline default (package data `prada/configs/default.yaml`)."""
    return Path(str(resources.files("prada") / "configs" / "default.yaml"))


def load_experiment(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Experiment YAML (None: the embedded default) + `key=value` overrides -> validated ExperimentConfig.

    Override keys are experiment fields (`seeds=[0,1]`, `folds=symbolic`, `base.train.max_steps=5`) or,
    as a shorthand, RunConfig sections that go into `base` (`train.max_steps=5`).
    """
    path = config_path(path) if path is not None else default_config_path()
    raw = read_yaml_mapping(path, "experiment config")
    for key, value in parse_overrides(overrides or []).items():
        if key in RUN_SECTIONS:  # shorthand: `train.max_steps=5` means `base.train.max_steps=5`
            raw["base"] = merge(raw.get("base") or {}, {key: value})
        elif key in ("base", "method_overrides") and isinstance(value, dict):
            raw[key] = merge(raw.get(key) or {}, value)
        else:
            raw[key] = value
    return experiment_from_dict(raw)


def experiment_from_dict(raw: dict) -> ExperimentConfig:
    """Cast each key to its declared type; unknown keys are errors that list the known ones."""
    hints = typing.get_type_hints(ExperimentConfig)
    known = {f.name for f in dataclasses.fields(ExperimentConfig)}
    kwargs = {}
    for key, value in raw.items():
        if key not in known:
            hint = f" (list them as `{key}s:`)" if key in ("method", "seed") else ""
            raise ConfigError(f"{key}: unknown experiment key{hint}; known keys: {', '.join(sorted(known))}")
        if hints[key] is dict:
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a mapping, got {value!r}")
            kwargs[key] = value
        else:
            kwargs[key] = cast_value(value, hints[key], key)
    return ExperimentConfig(**kwargs)


def validate_experiment(exp: ExperimentConfig) -> None:
    """Check the experiment's own keys and that every run config it implies loads; errors name the key."""
    if name_problem(exp.name):
        raise ConfigError(f"name: {exp.name!r} {name_problem(exp.name)}")
    for key in ("folds", "source_domains", "target_domains"):
        for name in getattr(exp, key):
            if name_problem(name):
                raise ConfigError(f"{key}: {name!r} {name_problem(name)}")
    for seed in exp.seeds:
        if not 0 <= seed < 2**32:
            raise ConfigError(f"seeds: each seed must be an integer in [0, 2**32), got {seed}")
    if exp.protocol not in PROTOCOLS:
        raise ConfigError(f"protocol: {exp.protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if not exp.methods:
        raise ConfigError("methods: list at least one method")
    for m in exp.methods:
        if m not in METHODS:
            raise ConfigError(f"methods: unknown method {m!r}; choose from {', '.join(METHODS)}")
    if len(set(exp.methods)) != len(exp.methods):
        raise ConfigError(f"methods: {exp.methods} lists a method twice")
    if not exp.seeds:
        raise ConfigError("seeds: list at least one seed")
    if len(set(exp.seeds)) != len(exp.seeds):
        raise ConfigError(f"seeds: {exp.seeds} lists a seed twice")
    for m, over in exp.method_overrides.items():
        if m not in exp.methods:
            raise ConfigError(f"method_overrides.{m}: not one of the experiment's methods {exp.methods}")
        if not isinstance(over, dict):
            raise ConfigError(f"method_overrides.{m}: expected a mapping of RunConfig keys")
    if exp.explain_per_dataset < 0:
        raise ConfigError(f"explain_per_dataset: must be >= 0 (0: all), got {exp.explain_per_dataset}")
    if exp.bootstrap < 100:
        raise ConfigError(f"bootstrap: {exp.bootstrap} resamples is too few for a 95% interval; use >= 100")
    for key in ("method", "seed"):
        if key in exp.base:
            raise ConfigError(f"base.{key}: set by the experiment; use `{key}s:` at the top level instead")
    base_data = exp.base.get("data") or {}
    for key in ("source_domains", "target_domains"):
        if base_data.get(key):
            raise ConfigError(
                f"base.data.{key}: set by the protocol; use the top-level `{key}` (protocol: explicit) or `folds`"
            )
    if exp.protocol == "leave-one-domain-out":
        for key in ("source_domains", "target_domains"):
            if getattr(exp, key):
                raise ConfigError(
                    f"{key}: only for protocol explicit (leave-one-domain-out picks targets from `folds`)"
                )
    else:
        if exp.folds:
            raise ConfigError(f"folds: only for protocol leave-one-domain-out (protocol is {exp.protocol})")
        if exp.protocol == "in-domain" and exp.target_domains:
            raise ConfigError("target_domains: protocol in-domain has no target domain; use protocol explicit")
        if exp.protocol == "explicit" and not exp.target_domains:
            raise ConfigError("target_domains: protocol explicit needs at least one target domain (or use in-domain)")
    # every run config must load: catches unknown keys and bad values before any training
    try:
        load_config(None, None, base=nest(exp.base))
    except ConfigError as e:
        raise ConfigError(f"base.{e}") from None
    for m in exp.methods:
        try:
            run_config(exp, m, exp.seeds[0], [], [])
        except ConfigError as e:
            raise ConfigError(f"method_overrides.{m}.{e}" if m in exp.method_overrides else f"base.{e}") from None


def run_config(exp: ExperimentConfig, method: str, seed: int, sources: list[str], targets: list[str]) -> RunConfig:
    """The resolved RunConfig of one run: base < method overrides < method, seed and the fold's domains."""
    raw = merge(nest(exp.base), nest(exp.method_overrides.get(method) or {}))
    raw = merge(raw, {"method": method, "seed": seed, "data": {"source_domains": sources, "target_domains": targets}})
    return load_config(None, None, base=raw)


# --- planning --------------------------------------------------------------------------------------------


def data_domains(cfg: RunConfig) -> list[str]:
    """Domains of the data a run config selects, from the dataset registries (reading data only when needed)."""
    known = known_datasets()
    d = cfg.data
    if d.datasets and all(k in known for k in d.datasets):
        found = {known[k].domain for k in d.datasets}
    elif not d.datasets and d.benchmark in BENCHMARKS and not d.data_dir:
        found = {i.domain for i in BENCHMARKS[d.benchmark].datasets.values()}
    else:  # custom folders or dataset keys: read the selected data once
        from prada.distill.dataset import load_distillation_set, prepare_data

        selected = dataclasses.replace(d, source_domains=[], target_domains=[])
        prepare_data(selected)  # the folds need the data's domains: build it now (once) if it is missing
        found = set(load_distillation_set(selected, cfg.seed).domains)
        return ordered_domains(found)
    if d.train_files or d.test_files:
        from prada.data.hub import read_example_file

        found |= {
            ex.domain
            for p, split in [*((p, "train") for p in d.train_files), *((p, "test") for p in d.test_files)]
            for ex in read_example_file(p, d.hub_columns, d.hub_values, split, [*d.train_files, *d.test_files])
        }
    return ordered_domains(found)


def plan_folds(exp: ExperimentConfig) -> list[tuple[str, list[str], list[str]]]:
    """(fold name, source domains, target domains) for each fold of the protocol."""
    if exp.protocol == "in-domain":
        return [(IN_DOMAIN_FOLD, list(exp.source_domains), [])]
    if exp.protocol == "explicit":
        return [("+".join(exp.target_domains), list(exp.source_domains), list(exp.target_domains))]
    domains = data_domains(run_config(exp, exp.methods[0], exp.seeds[0], [], []))
    if len(domains) < 2:
        raise ConfigError(f"protocol: leave-one-domain-out needs at least two domains; the data has {domains}")
    unknown = [f for f in exp.folds if f not in domains]
    if unknown:
        raise ConfigError(f"folds: unknown domain(s) {unknown}; the data has {domains}")
    targets = [d for d in domains if d in exp.folds] if exp.folds else domains
    return [(t, [d for d in domains if d != t], [t]) for t in targets]


def untrained_domains(path: str | Path) -> set[str]:
    """Target domains of a run or experiment config that none of its runs trains on (their rationales go unused)."""
    raw = read_yaml_mapping(config_path(path), "config")
    if not ({"methods", "protocol", "base"} & set(raw)):  # a run config
        return set(load_config(path).data.target_domains)
    folds = plan_folds(load_experiment(path))
    return {d for _, _, targets in folds for d in targets} - {d for _, sources, _ in folds for d in sources}


def plan_runs(exp: ExperimentConfig, root: Path) -> list[PlannedRun]:
    """Every (method, fold, seed) run, fold-major so that one fold's methods finish together.

    Methods that train nothing (prior, zero-shot: greedy and deterministic) run for the first seed
    only; the report pairs that one run with every seed of the others.
    """
    runs = []
    for fold, sources, targets in plan_folds(exp):
        for seed in exp.seeds:
            for method in exp.methods:
                if not method_spec(method).train and seed != exp.seeds[0]:
                    continue
                cfg = run_config(exp, method, seed, sources, targets)
                name = f"{method}__{fold}__seed{seed}"
                if name_problem(name):  # a domain read from the data names the fold
                    raise ConfigError(f"fold {fold!r}: {name_problem(name)}")
                runs.append(PlannedRun(method, fold, seed, cfg, root / "runs" / name))
    return runs


# --- running ---------------------------------------------------------------------------------------------


def _stale_keys(run: PlannedRun) -> list[str]:
    """Config keys where the run folder's saved config differs from the planned one.

    The saved file is read as any config is: a key it lacks takes its default, so a run saved by an
    older prada (before a switch existed) still matches a plan that leaves that switch at its default.
    """
    try:
        saved = load_config(run.dir / CONFIG)
    except ConfigError as e:
        raise PradaError(f"{e}; delete {run.dir} to run it again") from None
    return config_differences(saved, run.config, where=("saved", "planned"))


def check_not_stale(run: PlannedRun) -> None:
    """Refuse to reuse or resume a run folder that was made with another config."""
    if (run.dir / CONFIG).exists():
        stale = _stale_keys(run)
        if stale:
            raise PradaError(
                f"{run.dir} was made with a different config ({'; '.join(stale[:4])}); "
                "delete that folder or give the experiment another name"
            )


def read_artefact(path: Path, fix: str) -> dict:
    """A JSON object prada wrote (eval.json, explain.json, train_done.json); a damaged one names itself and `fix`."""
    import json

    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise PradaError(f"{path}: damaged ({type(e).__name__}); {fix}") from None
    if not isinstance(obj, dict):
        raise PradaError(f"{path}: damaged (not a JSON object); {fix}")
    return obj


def check_same_data(run: PlannedRun) -> None:
    """Refuse to reuse a finished run whose data changed since (train_done.json holds its fingerprint)."""
    from prada.distill.dataset import load_distillation_set
    from prada.train.loop import data_fingerprint

    recorded = read_artefact(run.dir / DONE, f"delete {run.dir} to run it again").get("data")
    if recorded is None:  # an older run, or one without data (prior)
        return
    if data_fingerprint(load_distillation_set(run.config.data, run.config.seed)) != recorded:
        raise PradaError(
            f"{run.dir} was trained on other data (its data files changed since); delete that folder to train "
            "it again on the current data, or give the experiment another name"
        )


def execute_run(run: PlannedRun, explain: int | None, progress: bool, status: Callable[[str], None]) -> str:
    """Bring one run to 'trained, evaluated (and explained)', reusing whatever is already on disk.

    `explain`: None skips `prada explain`; otherwise the questions per dataset it featurises (0: all).
    """
    from prada.evaluation.evaluate import evaluate_run
    from prada.train.checkpoint import find_checkpoint, remove_checkpoints
    from prada.train.loop import train

    actions = []
    check_not_stale(run)
    if (run.dir / DONE).exists():
        check_same_data(run)
        remove_checkpoints(run.dir)  # a kill between train_done.json and their removal leaves them
    else:
        if find_checkpoint(run.dir) is not None:
            status("resuming training from its checkpoint")
            train(resume=run.dir, progress=progress)
            actions.append("resumed")
        else:
            # Killed before its first checkpoint: train() starts over in the folder (its config was
            # checked above; the log is rewritten). Nothing is deleted: a folder prada did not make is refused.
            if run.dir.exists() and any(run.dir.iterdir()) and not (run.dir / CONFIG).exists():
                raise PradaError(
                    f"{run.dir} holds files prada did not write (no config.yaml); move them away or give the "
                    "experiment another name"
                )
            status("training" if run.trains else "preparing (no training)")
            train(run.config, run.dir, progress=progress)
            actions.append("trained" if run.trains else "prepared")
    for stage in (EVAL, EXPLAIN_JSON):  # finished stages are reused: they must be readable
        if (run.dir / stage).exists():
            read_artefact(run.dir / stage, "delete it and rerun `prada run` to redo that stage")
    if not (run.dir / EVAL).exists():
        status("evaluating")
        evaluate_run(run.dir, progress=progress)
        actions.append("evaluated")
    if explain is not None and run.trains and not (run.dir / EXPLAIN_JSON).exists():
        from prada.report.explain import explain_run

        status("explaining")
        explain_run(run.dir, max_per_dataset=explain, progress=progress)
        actions.append("explained")
    return ", ".join(actions) or "reused (finished earlier)"


def prepare_data(runs: list[PlannedRun], status: Callable[[str], None]) -> None:
    """Build each data folder the runs need once, up front (synthetic suite or ftcot12 import)."""
    from prada.distill.dataset import prepare_data as build_data

    seen = set()
    for run in runs:
        d = dataclasses.replace(run.config.data, source_domains=[], target_domains=[])
        if d.benchmark == NO_BENCHMARK:  # custom files only: nothing to build
            continue
        key = (d.benchmark, d.data_dir, d.source, d.synth_seed)
        if key in seen:
            continue
        seen.add(key)
        folder = build_data(d)
        status(f"[data] {d.benchmark}: ready at {folder}")


def run_experiment(
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> Path:
    """Run the whole experiment (data, every run, explain, report); returns OUT_DIR/<name>/.

    `config` None runs the embedded offline default. `log` receives one status line per stage.
    """
    say = log or (lambda _msg: None)
    exp = load_experiment(config, overrides)
    root = Path(exp.out_dir) / exp.name
    runs = plan_runs(exp, root)
    for run in runs:  # before writing anything
        check_not_stale(run)
    # one `prada run` at a time on an experiment folder: a second one is a clear error, not interleaved runs
    with folder_lock(root, "prada run" + (f" --config {config}" if config else "")):
        return _run_planned(exp, root, runs, progress, say)


def _run_planned(exp: ExperimentConfig, root: Path, runs: list[PlannedRun], progress: bool, say) -> Path:
    from prada.report import write_report

    atomic_write_text(root / "experiment.yaml", yaml.safe_dump(dataclasses.asdict(exp), sort_keys=False))
    say(
        f"experiment {exp.name}: {len(runs)} runs ({exp.protocol}; methods {', '.join(exp.methods)}; "
        f"folds {', '.join(sorted({r.fold for r in runs}))}; seeds {exp.seeds}) -> {root}"
    )
    prepare_data(runs, say)
    for i, run in enumerate(runs, 1):
        head = f"[{i}/{len(runs)}] {run.method} fold={run.fold} seed={run.seed}"
        done = execute_run(
            run,
            exp.explain_per_dataset if exp.explain else None,
            progress,
            lambda stage, head=head: say(f"{head}: {stage}"),
        )
        say(f"{head}: {done}")
    say("[report] writing results.json, report.md and plots")
    write_report(root, runs, exp)
    return root
