"""The experiment report: results.json (every run + aggregates with 95% bootstrap CIs), report.md and PNG plots.

Reads only files the earlier stages wrote: each run's config.yaml, eval.json, predictions.jsonl,
train_log.jsonl and explain/explain.json.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from statistics import mean, pstdev
from typing import Any, Iterable

from prada.config import config_to_dict
from prada.evaluation.metrics import bootstrap_ci
from prada.io import atomic_write_json, atomic_write_text, read_jsonl_tolerant

LEVEL = 0.95


def _flags_by_dataset(run_dir: Path) -> dict[str, list[bool]]:
    flags: dict[str, list[bool]] = {}
    for row in read_jsonl_tolerant(run_dir / "predictions.jsonl"):
        flags.setdefault(row["dataset"], []).append(bool(row["correct"]))
    return flags


def _config_summary(cfg) -> dict:
    """The handful of settings a reader needs to tell runs apart."""
    d = config_to_dict(cfg)
    return {
        "method": cfg.method,
        "seed": cfg.seed,
        "backbone": cfg.backbone,
        "student": cfg.student.model,
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


def _groups(flags: dict[str, list[bool]], datasets: Iterable[str]) -> list[list[bool]]:
    return [flags[k] for k in datasets if k in flags and flags[k]]


def _ci(groups: list[list[bool]], n_boot: int) -> list[float] | None:
    return [round(x, 2) for x in bootstrap_ci(groups, n_boot=n_boot, level=LEVEL)] if groups else None


def _run_record(run: Any, root: Path, n_boot: int) -> dict:
    """One run: its eval.json, config summary, per-item CIs, and pointers to its logs and explanation."""
    run_dir = Path(run.dir)
    result = json.loads((run_dir / "eval.json").read_text())
    flags = _flags_by_dataset(run_dir)
    datasets = result["datasets"]
    targets = set(run.config.data.target_domains)
    in_domain = lambda doms: [k for k, v in datasets.items() if v["domain"] in doms]  # noqa: E731
    sources = {v["domain"] for v in datasets.values()} - targets
    ci = {
        "datasets": {k: _ci(_groups(flags, [k]), n_boot) for k in datasets},
        "domains": {d: _ci(_groups(flags, in_domain({d})), n_boot) for d in result["domains"]},
        "mean_accuracy": _ci(_groups(flags, datasets), n_boot),
        "source_accuracy": _ci(_groups(flags, in_domain(sources)), n_boot),
        "target_accuracy": _ci(_groups(flags, in_domain(targets)), n_boot),
    }
    explain = run_dir / "explain" / "explain.json"
    done = run_dir / "train_done.json"
    record = {
        "run": run_dir.name,
        "dir": str(run_dir.relative_to(root)) if run_dir.is_relative_to(root) else str(run_dir),
        "method": run.method,
        "fold": run.fold,
        "seed": run.seed,
        "source_domains": sorted(sources),
        "target_domains": sorted(targets),
        "config": _config_summary(run.config),
        "train": json.loads(done.read_text()) if done.exists() else None,
        "eval": result,
        "ci": ci,
        "explain": None,
    }
    if explain.exists():
        ex = json.loads(explain.read_text())
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


def _aggregate(records: list[dict], flags_of: dict[str, dict[str, list[bool]]], n_boot: int) -> dict:
    """Across seeds of one (method, fold): mean of per-seed accuracies, CI over seed x dataset groups."""
    first = records[0]
    targets = set(first["target_domains"])
    datasets = first["eval"]["datasets"]

    def cell(per_seed: list[float | None], groups: list[list[bool]]) -> dict | None:
        vals = [v for v in per_seed if v is not None]
        if not vals:
            return None
        out = {"accuracy": round(mean(vals), 2), "ci": _ci(groups, n_boot)}
        if len(vals) > 1:
            out["seed_sd"] = round(pstdev(vals), 2)
        return out

    def groups(keys: list[str]) -> list[list[bool]]:
        return [g for r in records for g in _groups(flags_of[r["run"]], keys)]

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
        c = cell([r["eval"]["datasets"].get(k, {}).get("accuracy") for r in records], groups([k]))
        out["datasets"][k] = {
            "domain": v["domain"],
            "role": "target" if v["domain"] in targets else "source",
            "n": v["n"],
            **(c or {}),
        }
    for d in first["eval"]["domains"]:
        c = cell([r["eval"]["domains"].get(d) for r in records], groups(by_domain({d})))
        out["domains"][d] = {"role": "target" if d in targets else "source", **(c or {})}
    sources = set(first["source_domains"])
    out["mean_accuracy"] = cell([r["eval"]["mean_accuracy"] for r in records], groups(list(datasets)))
    out["source_accuracy"] = cell([r["eval"]["source_accuracy"] for r in records], groups(by_domain(sources)))
    out["target_accuracy"] = cell([r["eval"]["target_accuracy"] for r in records], groups(by_domain(targets)))
    s, t = out["source_accuracy"], out["target_accuracy"]
    out["gap"] = round(s["accuracy"] - t["accuracy"], 2) if s and t else None
    return out


def _across_folds(summary: list[dict], records: list[dict], flags_of: dict, n_boot: int) -> list[dict]:
    """Per method over all folds (leave-one-domain-out: every domain is the target once)."""
    out = []
    for method in dict.fromkeys(s["method"] for s in summary):
        rows = [s for s in summary if s["method"] == method]
        entry: dict = {"method": method, "folds": [s["fold"] for s in rows]}
        for key, role in (("source_accuracy", "source"), ("target_accuracy", "target"), ("mean_accuracy", None)):
            vals = [s[key]["accuracy"] for s in rows if s.get(key)]
            groups = [
                flags_of[r["run"]][k]
                for r in records
                if r["method"] == method
                for k, v in r["eval"]["datasets"].items()
                if k in flags_of[r["run"]]
                and (role is None or (v["domain"] in r["target_domains"]) == (role == "target"))
            ]
            entry[key] = {"accuracy": round(mean(vals), 2), "ci": _ci(groups, n_boot)} if vals else None
        s, t = entry["source_accuracy"], entry["target_accuracy"]
        entry["gap"] = round(s["accuracy"] - t["accuracy"], 2) if s and t else None
        out.append(entry)
    return out


def collect_results(root: Path, runs: list[Any], experiment: Any, n_boot: int = 1000) -> dict:
    """Everything the report shows, as one JSON-ready dict (also written as results.json)."""
    from prada.report.markdown import PUBLISHED_FTCOT

    root = Path(root)
    records = [_run_record(r, root, n_boot) for r in runs]
    flags_of = {Path(r.dir).name: _flags_by_dataset(Path(r.dir)) for r in runs}
    cells: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        cells.setdefault((rec["method"], rec["fold"]), []).append(rec)
    summary = [_aggregate(recs, flags_of, n_boot) for recs in cells.values()]
    exp = dataclasses.asdict(experiment) if dataclasses.is_dataclass(experiment) else dict(experiment)
    datasets = sorted({k for r in records for k in r["eval"]["datasets"]})
    return {
        "name": exp.get("name"),
        "protocol": exp.get("protocol"),
        "methods": exp.get("methods"),
        "folds": list(dict.fromkeys(r["fold"] for r in records)),
        "seeds": exp.get("seeds"),
        "ci": {
            "level": LEVEL,
            "n_boot": n_boot,
            "method": "percentile bootstrap over test items, resampled within each dataset (and seed); macro mean over datasets",
        },
        "experiment": exp,
        "runs": records,
        "summary": summary,
        "across_folds": _across_folds(summary, records, flags_of, n_boot)
        if len({r["fold"] for r in records}) > 1
        else [],
        "published": {k: PUBLISHED_FTCOT[k] for k in datasets if k in PUBLISHED_FTCOT},
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
    atomic_write_json(root / "results.json", results)
    path = root / "report.md"
    atomic_write_text(path, render_report(results))
    return path
