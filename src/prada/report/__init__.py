"""The experiment report: results.json (every run + aggregates with 95% bootstrap CIs), report.md and PNG plots.

Reads only files the earlier stages wrote: each run's config.yaml, eval.json, predictions.jsonl,
train_log.jsonl and explain/explain.json.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from statistics import mean, pstdev
from typing import Any

from prada.config import config_to_dict
from prada.errors import PradaError
from prada.evaluation.metrics import Flags, bootstrap_ci, seed_t_interval
from prada.io import atomic_write_json, atomic_write_text, read_jsonl_tolerant
from prada.methods.registry import comparisons, method_spec
from prada.model_aliases import describe_model
from prada.report.environment import environment
from prada.run_dir import DONE, EVAL, EXPLAIN_JSON, PREDICTIONS, TRAIN_LOG

LEVEL = 0.95
CI_METHOD = (
    "two-level percentile bootstrap: seeds resampled, and within each dataset the same test items resampled for "
    "every seed and both methods of a pair; one right and one wrong pseudo-item per dataset (pairs: one "
    "(right, wrong) and one (wrong, right)) so no interval collapses at 0 or 100%; macro mean over datasets. "
    "Per-dataset CIs of one run: Wilson score intervals"
)


def _damaged(path: Path, why: str) -> PradaError:
    return PradaError(f"{path}: {why}; the run's files were damaged or edited: rerun `prada eval` on that run")


def _flags_by_dataset(run_dir: Path) -> Flags:
    """dataset -> item id -> correct, from a run's predictions.jsonl (written whole by eval: every line checked)."""
    from prada.io import iter_jsonl

    path = run_dir / PREDICTIONS
    flags: Flags = {}
    if not path.exists():
        return flags
    for line, row in iter_jsonl(path):
        ok = isinstance(row, dict) and isinstance(row.get("dataset"), str) and isinstance(row.get("id"), (str, int))
        if not ok or not isinstance(row.get("correct"), bool):
            raise _damaged(path, f"line {line} is not a prediction with a dataset, an id and a true/false `correct`")
        flags.setdefault(row["dataset"], {})[str(row["id"])] = row["correct"]
    return flags


def _read_object(path: Path) -> dict:
    what = path.name
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _damaged(path, f"unreadable {what} ({type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise _damaged(path, f"not a JSON object ({what})")
    return obj


def _checked_eval(run_dir: Path, flags: Flags, sources: set[str] | None, targets: set[str]) -> dict:
    """The run's eval.json, its shape checked and its accuracies recomputed from predictions.jsonl: the
    intervals come from the predictions, so a figure that disagrees with them (an edit) is replaced, with a warning."""
    import logging
    import math

    from prada.evaluation.metrics import accuracy, summarize

    path = run_dir / EVAL
    result = _read_object(path)
    datasets = result.get("datasets")
    if not isinstance(datasets, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("domain"), str) for v in datasets.values()
    ):
        raise _damaged(path, 'no "datasets" of {"domain", "n", "accuracy"} objects')
    if not isinstance(result.get("domains"), dict):
        raise _damaged(path, 'no "domains" object')
    changed = []
    for k, v in datasets.items():
        if k not in flags and isinstance(v.get("n"), int) and v["n"] > 0:
            raise _damaged(path, f"dataset {k!r} has no line in {PREDICTIONS}")
        items = list(flags.get(k, {}).values())
        acc = accuracy(items)
        given = v.get("accuracy")
        if not (isinstance(given, (int, float)) and math.isfinite(given) and abs(given - acc) < 1e-6):
            changed.append(f"{k}: {given!r} in eval.json, {acc:.2f} from its predictions")
            v.update(accuracy=acc, n=len(items))
        ci = v.get("ci")
        ci_ok = isinstance(ci, list) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci)
        if not (ci_ok and ci[0] - 1e-6 <= acc <= ci[1] + 1e-6):
            v.pop("ci", None)  # recomputed from the predictions by the report
    if changed:
        logging.getLogger("prada.report").warning("%s: accuracies recomputed (%s)", path, "; ".join(changed[:5]))
        src = sorted({v["domain"] for v in datasets.values()} - targets) if sources is None else sorted(sources)
        result.update(summarize(datasets, src, sorted(targets)))
    return result


def _config_summary(cfg) -> dict:
    """The handful of settings a reader needs to tell runs apart."""
    d = config_to_dict(cfg)
    return {
        "method": cfg.method,
        "method_label": method_spec(cfg.method).label or cfg.method,
        "seed": cfg.seed,
        "backbone": cfg.backbone,
        "student": cfg.student.model,
        "student_label": describe_model(cfg.student.model),
        "benchmark": cfg.data.benchmark,
        "datasets": cfg.data.datasets,
        "source_domains": cfg.data.source_domains,
        "target_domains": cfg.data.target_domains,
        "max_train_per_dataset": cfg.data.max_train_per_dataset,
        "max_test_per_dataset": cfg.data.max_test_per_dataset,
        "train": {k: d["train"][k] for k in ("epochs", "max_steps", "batch_size", "grad_accum", "lr", "precision")},
        "adversary": {k: d["adversary"][k] for k in ("lambda_max", "schedule", "layer")},
        "prompt": {k: d["prompt"][k] for k in ("num_virtual_tokens", "encoder")},
        "eval": d["eval"],
    }


def _ci(runs: list[Flags], datasets: list[str], n_boot: int, baseline: list[Flags] | None = None) -> list[float] | None:
    if not datasets:
        return None
    ci = bootstrap_ci(runs, baseline, datasets=datasets, n_boot=n_boot, level=LEVEL)
    return [round(x, 2) for x in ci] if ci else None


def _run_record(run: Any, root: Path, n_boot: int, flags: Flags) -> dict:
    """One run: its eval.json, config summary, per-item CIs, and pointers to its logs and explanation."""
    run_dir = Path(run.dir)
    targets = set(run.config.data.target_domains)
    result = _checked_eval(run_dir, flags, None, targets)
    datasets = result["datasets"]
    in_domain = lambda doms: [k for k, v in datasets.items() if v["domain"] in doms]  # noqa: E731
    sources = {v["domain"] for v in datasets.values()} - targets
    ci = {
        "datasets": {k: v.get("ci") or _ci([flags], [k], n_boot) for k, v in datasets.items()},
        "domains": {d: _ci([flags], in_domain({d}), n_boot) for d in result["domains"]},
        "mean_accuracy": _ci([flags], list(datasets), n_boot),
        "source_accuracy": _ci([flags], in_domain(sources), n_boot),
        "target_accuracy": _ci([flags], in_domain(targets), n_boot),
    }
    explain = run_dir / EXPLAIN_JSON
    done = run_dir / DONE
    record = {
        "run": run_dir.name,
        "dir": str(run_dir.relative_to(root)) if run_dir.is_relative_to(root) else str(run_dir),
        "method": run.method,
        "fold": run.fold,
        "seed": run.seed,
        "source_domains": sorted(sources),
        "target_domains": sorted(targets),
        "config": _config_summary(run.config),
        "train": _read_object(done) if done.exists() else None,
        "eval": result,
        "ci": ci,
        "explain": None,
        "heldout": _last_heldout(run_dir),
    }
    if explain.exists():
        ex = _read_object(explain)
        if not all(isinstance(ex.get(side), dict) for side in ("trained", "untrained")):
            raise _damaged(explain, 'no "trained" and "untrained" analyses; delete it and rerun `prada explain`')
        record["explain"] = {
            "path": str((explain.parent / "explain.md").relative_to(root))
            if explain.is_relative_to(root)
            else str(explain.parent / "explain.md"),
            **{
                side: {
                    "probe_accuracy": (ex[side].get("probe") or {}).get("accuracy"),
                    "pad_mean": ex[side].get("pad_mean"),
                }
                for side in ("trained", "untrained")
            },
        }
    return record


HELDOUT_KEYS = (
    "step",
    "heldout_probe_acc",
    "heldout_probe_majority",
    "heldout_head_acc",
    "heldout_lm_loss_source",
    "heldout_lm_loss_target",
)


def _last_heldout(run_dir: Path) -> dict | None:
    """The held-out domain diagnostics at the run's last `train.eval_every` check (None: never checked)."""
    from prada.report.plots import heldout_rows

    rows = heldout_rows(read_jsonl_tolerant(run_dir / TRAIN_LOG))
    return {k: rows[-1].get(k) for k in HELDOUT_KEYS} if rows else None


def _aggregate(records: list[dict], flags_of: dict[str, Flags], n_boot: int) -> dict:
    """Across seeds of one (method, fold): mean of per-seed accuracies; CI resamples seeds and shared items."""
    first = records[0]
    targets = set(first["target_domains"])
    datasets = first["eval"]["datasets"]
    runs = [flags_of[r["run"]] for r in records]

    def cell(per_seed: list[float | None], keys: list[str]) -> dict | None:
        vals = [v for v in per_seed if v is not None]
        if not vals:
            return None
        out = {"accuracy": round(mean(vals), 2), "ci": _ci(runs, keys, n_boot)}
        if len(vals) > 1:
            out["seed_sd"] = round(pstdev(vals), 2)
        return out

    by_domain = lambda doms: [k for k, v in datasets.items() if v["domain"] in doms]  # noqa: E731
    out: dict = {
        "method": first["method"],
        "fold": first["fold"],
        "seeds": [r["seed"] for r in records],
        "source_domains": first["source_domains"],
        "target_domains": first["target_domains"],
        "datasets": {},
        "domains": {},
    }
    for k, v in datasets.items():
        c = cell([r["eval"]["datasets"].get(k, {}).get("accuracy") for r in records], [k])
        rates = {
            rate: round(
                mean(r["eval"]["datasets"][k][rate] for r in records if rate in r["eval"]["datasets"].get(k, {})), 2
            )
            for rate in RATES
            if all(rate in r["eval"]["datasets"].get(k, {}) for r in records)
        }
        out["datasets"][k] = {
            "domain": v["domain"],
            "role": "target" if v["domain"] in targets else "source",
            "n": v["n"],
            **(c or {}),
            **rates,
        }
    for d in first["eval"]["domains"]:
        c = cell([r["eval"]["domains"].get(d) for r in records], by_domain({d}))
        out["domains"][d] = {"role": "target" if d in targets else "source", **(c or {})}
    sources = set(first["source_domains"])
    out["mean_accuracy"] = cell([r["eval"]["mean_accuracy"] for r in records], list(datasets))
    out["source_accuracy"] = cell([r["eval"]["source_accuracy"] for r in records], by_domain(sources))
    out["target_accuracy"] = cell([r["eval"]["target_accuracy"] for r in records], by_domain(targets))
    return out


RATES = ("arrow_rate", "truncated_rate", "format_rate")


def _fold_flags(records: list[dict], flags_of: dict[str, Flags], role: str | None) -> dict[int, Flags]:
    """seed -> one Flags over every fold, keys `fold/dataset`, keeping the datasets of `role` (None: all)."""
    out: dict[int, Flags] = {}
    for r in records:
        for k, v in r["eval"]["datasets"].items():
            if role is None or (v["domain"] in r["target_domains"]) == (role == "target"):
                if k in flags_of[r["run"]]:
                    out.setdefault(r["seed"], {})[f"{r['fold']}/{k}"] = flags_of[r["run"]][k]
    return out


def _across_folds(summary: list[dict], records: list[dict], flags_of: dict, n_boot: int) -> list[dict]:
    """Per method over all folds (leave-one-domain-out: every domain is the target once)."""
    out = []
    for method in dict.fromkeys(s["method"] for s in summary):
        rows = [s for s in summary if s["method"] == method]
        mine = [r for r in records if r["method"] == method]
        entry: dict = {"method": method, "folds": [s["fold"] for s in rows]}
        for key, role in (("source_accuracy", "source"), ("target_accuracy", "target"), ("mean_accuracy", None)):
            vals = [s[key]["accuracy"] for s in rows if s.get(key)]
            by_seed = _fold_flags(mine, flags_of, role)
            runs = [by_seed[seed] for seed in sorted(by_seed)]
            keys = sorted(set.intersection(*(set(f) for f in runs))) if runs else []
            entry[key] = {"accuracy": round(mean(vals), 2), "ci": _ci(runs, keys, n_boot)} if vals else None
        out.append(entry)
    return out


def _macro(flags: Flags, keys: list[str]) -> float:
    return mean(100.0 * sum(flags[k].values()) / len(flags[k]) for k in keys)


def paired_differences(records: list[dict], flags_of: dict[str, Flags], n_boot: int) -> list[dict]:
    """Accuracy of a minus b (points) per fold and role, on the same items and seeds, with a paired 95% CI."""
    out = []
    methods = list(dict.fromkeys(r["method"] for r in records))
    for a, b in comparisons(methods):
        for fold in dict.fromkeys(r["fold"] for r in records):
            runs_a = {r["seed"]: r for r in records if r["method"] == a and r["fold"] == fold}
            runs_b = {r["seed"]: r for r in records if r["method"] == b and r["fold"] == fold}
            for x, y in ((runs_a, a), (runs_b, b)):  # an untrained method ran once: it pairs with every seed
                if len(x) == 1 and not method_spec(y).train:
                    only = next(iter(x.values()))
                    x.update({seed: only for seed in {r["seed"] for r in records if r["fold"] == fold}})
            seeds = sorted(set(runs_a) & set(runs_b))
            if not seeds:
                continue
            first = runs_a[seeds[0]]
            for role in ("source", "target"):
                keys = [
                    k
                    for k, v in first["eval"]["datasets"].items()
                    if (v["domain"] in first["target_domains"]) == (role == "target")
                ]
                fa = [_shared(flags_of[runs_a[s]["run"]], flags_of[runs_b[s]["run"]]) for s in seeds]
                fb = [_shared(flags_of[runs_b[s]["run"]], flags_of[runs_a[s]["run"]]) for s in seeds]
                keys = [k for k in keys if all(f.get(k) for f in fa)]
                if not keys:
                    continue
                diff = mean(_macro(x, keys) - _macro(y, keys) for x, y in zip(fa, fb))
                by_seed = seed_t_interval(fa, fb, keys, level=LEVEL)
                out.append(
                    {
                        "a": a,
                        "b": b,
                        "fold": fold,
                        "role": role,
                        "diff": round(diff, 2),
                        "ci": _ci(fa, keys, n_boot, baseline=fb),
                        # beside the bootstrap: t over the seeds' own paired differences (only seeds vary)
                        "seed_ci": [round(x, 2) for x in by_seed["ci"]] if by_seed else None,
                        "per_seed": [round(_macro(x, keys) - _macro(y, keys), 2) for x, y in zip(fa, fb)],
                        "seeds": seeds,
                        "n_items": sum(len(fa[0][k]) for k in keys),
                    }
                )
    return out


def _shared(flags: Flags, other: Flags) -> Flags:
    """`flags` restricted to the items that `other` also scored."""
    return {k: {i: v for i, v in items.items() if i in other.get(k, {})} for k, items in flags.items() if k in other}


def _in_domain_reference(summary: list[dict]) -> None:
    """Beside each target dataset: the same method's accuracy on it in folds where it was a source."""
    for s in summary:
        for k, info in s["datasets"].items():
            if info["role"] != "target":
                continue
            seen = [
                o["datasets"][k]["accuracy"]
                for o in summary
                if o["method"] == s["method"]
                and o["fold"] != s["fold"]
                and o["datasets"].get(k, {}).get("role") == "source"
                and o["datasets"][k].get("accuracy") is not None
            ]
            if seen:
                info["in_domain_accuracy"] = round(mean(seen), 2)


def collect_results(root: Path, runs: list[Any], experiment: Any, n_boot: int = 1000) -> dict:
    """Everything the report shows, as one JSON-ready dict (also written as results.json)."""
    from prada.report.markdown import PUBLISHED_FTCOT

    root = Path(root)
    flags_of = {Path(r.dir).name: _flags_by_dataset(Path(r.dir)) for r in runs}
    records = [_run_record(r, root, n_boot, flags_of[Path(r.dir).name]) for r in runs]
    cells: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        cells.setdefault((rec["method"], rec["fold"]), []).append(rec)
    summary = [_aggregate(recs, flags_of, n_boot) for recs in cells.values()]
    _in_domain_reference(summary)
    exp = dataclasses.asdict(experiment) if dataclasses.is_dataclass(experiment) else dict(experiment)
    datasets = sorted({k for r in records for k in r["eval"]["datasets"]})
    return {
        "name": exp.get("name"),
        "protocol": exp.get("protocol"),
        "methods": exp.get("methods"),
        "folds": list(dict.fromkeys(r["fold"] for r in records)),
        "seeds": exp.get("seeds"),
        "ci": {"level": LEVEL, "n_boot": n_boot, "method": CI_METHOD},
        "experiment": exp,
        "runs": records,
        "summary": summary,
        "paired": paired_differences(records, flags_of, n_boot),
        "across_folds": _across_folds(summary, records, flags_of, n_boot)
        if len({r["fold"] for r in records}) > 1
        else [],
        "published": {k: PUBLISHED_FTCOT[k] for k in datasets if k in PUBLISHED_FTCOT},
        "environment": environment([Path(r.dir) for r in runs]),
    }


def write_report(root: Path, runs: list[Any], experiment: Any) -> Path:
    """Write root/results.json, root/report.md and root/*.png; returns the report.md path."""
    from prada.report.markdown import render_report
    from prada.report.plots import write_plots

    root = Path(root)
    n_boot = (
        experiment.get("bootstrap", 1000) if isinstance(experiment, dict) else getattr(experiment, "bootstrap", 1000)
    )
    results = collect_results(root, runs, experiment, n_boot)
    plots = write_plots(results, root, {r["run"]: Path(run.dir) for r, run in zip(results["runs"], runs)})
    results["plots"] = [p.name for p in plots]
    results = _json_safe(results)  # a bare NaN is not JSON: other readers choke on it
    atomic_write_json(root / "results.json", results)
    path = root / "report.md"
    atomic_write_text(path, render_report(results))
    return path


def _json_safe(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# --- a report from whatever finished ----------------------------------------------------------------------


@dataclasses.dataclass
class FinishedRun:
    """A run folder read back from disk: what `write_report` needs of a planned run."""

    method: str
    fold: str
    seed: int
    config: Any
    dir: Path


def finished_runs(root: Path) -> list[FinishedRun]:
    """Every evaluated run under root/runs/ (folders named METHOD__FOLD__seedN by `prada run`), in name order."""
    from prada.errors import PradaError
    from prada.run_dir import CONFIG, saved_run_config

    found = []
    for run_dir in sorted(Path(root, "runs").glob("*/")):
        if not (run_dir / CONFIG).exists() or not (run_dir / EVAL).exists():
            continue  # still training or evaluating
        cfg = saved_run_config(run_dir)
        parts = run_dir.name.split("__")
        fold = parts[1] if len(parts) == 3 else "+".join(cfg.data.target_domains) or "in-domain"
        found.append(FinishedRun(cfg.method, fold, cfg.seed, cfg, run_dir))
    if not found:
        raise PradaError(f"{root}: no evaluated run under {Path(root, 'runs')}/ (each needs config.yaml and eval.json)")
    return found


def report_finished(root: Path, out: Path | None = None) -> tuple[Path, int, int | None]:
    """The report of the runs of experiment folder `root` that have finished so far, written to `out` (default root).

    Why: a study that spans sessions, or a `prada run` killed halfway, should be readable before its last run.
    Returns (report.md, runs reported, runs planned or None when root has no experiment.yaml).
    """
    from prada.config import read_yaml_mapping

    root = Path(root)
    runs = finished_runs(root)
    exp_file = root / "experiment.yaml"
    experiment = read_yaml_mapping(exp_file, "experiment") if exp_file.exists() else {}
    planned = None
    if experiment:
        untrained = [m for m in experiment.get("methods") or [] if not method_spec(m).train]
        trained = len(experiment.get("methods") or []) - len(untrained)
        folds = {r.fold for r in runs}
        planned = len(folds) * (len(untrained) + trained * len(experiment.get("seeds") or [0]))
    experiment = {
        "name": experiment.get("name", root.name),
        "protocol": experiment.get("protocol", "?"),
        "methods": list(dict.fromkeys(r.method for r in runs)),
        "seeds": sorted({r.seed for r in runs}),
        **{k: v for k, v in experiment.items() if k not in ("methods", "seeds", "name", "protocol")},
        "finished_runs": len(runs),
        "planned_runs": planned,
    }
    out = Path(out) if out else root
    out.mkdir(parents=True, exist_ok=True)
    return write_report(out, runs, experiment), len(runs), planned
