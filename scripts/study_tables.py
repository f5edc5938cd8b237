"""The study's tables for docs/results.md, printed as markdown from a report's results.json.

Why a script: the numbers in docs/results.md are copied from the measured results, never typed.
    python scripts/study_tables.py [results/study/results.json] [--write docs/results.md --write README.md]
    python scripts/study_tables.py --study 2 [--write ...]     # study 2 (results/study2/synth2real)
With --write each generated block (the full tables, the README's headline table) replaces what sits
between its markers in the document, `<!-- NAME:begin -->` and `<!-- NAME:end -->` (study 1: study-tables,
study-headline; study 2: study2-tables, study2-headline).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from prada.report.markdown import fmt_cell, markdown_table, paired_reading


@dataclass(frozen=True)
class Study:
    """What differs between the studies' tables: methods, target datasets, the contrasts that answer the question."""

    results: str
    order: tuple[str, ...]
    targets: tuple[tuple[str, str], ...]  # (dataset, short column label)
    source: str  # the source column's header
    headline: tuple[tuple[str, str, str], ...]  # (a, b, what the contrast isolates); the first is the primary
    heldout: str  # the held-out probe column's header
    blocks: tuple[str, str]  # the document markers of the full tables and of the README's headline


STUDIES = {
    1: Study(
        results="results/study/results.json",
        order=("prior", "zero-shot", "answer-ft", "ft-cot", "ft-cot-tlm", "ptune", "dann", "prada"),
        targets=(("date_understanding", "date"), ("tracking_shuffled_objects", "tracking")),
        source="source (10 datasets x 30)",
        headline=(
            ("prada", "ft-cot", "primary"),
            ("prada", "ptune", "the adversary, with the prompt"),
            ("dann", "ft-cot", "the adversary, without it"),
            ("ptune", "ft-cot", "the prompt alone"),
            ("ft-cot-tlm", "ft-cot", "LM loss on the unlabelled target questions"),
            ("ft-cot", "answer-ft", "answers without rationales"),
            ("ft-cot", "prior", "most frequent train answer"),
        ),
        heldout="held-out probe (step 150; majority 0.25)",
        blocks=("study-tables", "study-headline"),
    ),
    2: Study(
        results="results/study2/synth2real/results.json",
        order=("prior", "zero-shot", "ft-cot", "ft-cot-tlm", "ptune", "prada", "prada-tlm"),
        targets=(("coin_flip", "coin_flip"), ("multiarith", "multiarith"), ("addsub", "addsub")),
        source="source (synthetic, 2 families x 100)",
        headline=(
            ("prada", "ft-cot", "primary"),
            ("prada", "ptune", "the adversary, with the prompt"),
            ("prada", "ft-cot-tlm", "the unlabelled target questions"),
            ("prada-tlm", "ft-cot-tlm", "the adversary beside the target LM loss"),
            ("ptune", "ft-cot", "the prompt alone"),
            ("ft-cot-tlm", "ft-cot", "LM loss on the unlabelled target questions"),
            ("ft-cot", "prior", "most frequent train answer"),
        ),
        heldout="held-out probe (step 400; majority 0.50)",
        blocks=("study2-tables", "study2-headline"),
    ),
}


def table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(markdown_table(header, rows))


def mean_of(runs: list[dict], dataset: str, key: str) -> str:
    values = [r["eval"]["datasets"][dataset].get(key) for r in runs if dataset in r["eval"]["datasets"]]
    values = [v for v in values if v is not None]
    return f"{sum(values) / len(values):.0f}" if values else "–"


def seed_columns(p: dict) -> list[str]:
    """The seed-level t interval and the per-seed differences, beside the bootstrap (three seeds that agree are
    p = 0.125 one-sided by themselves)."""
    seed_ci = "[{:+.1f}, {:+.1f}]".format(*p["seed_ci"]) if p.get("seed_ci") else "–"
    return [seed_ci, ", ".join(f"{d:+.1f}" for d in p.get("per_seed") or []) or "–"]


def headline(res: dict, study: Study) -> str:
    """The README's table: the contrasts that answer the question, on the target."""
    paired = {(p["a"], p["b"]): p for p in res["paired"] if p["role"] == "target"}
    with_seeds = any(p.get("seed_ci") for p in paired.values())
    rows = []
    for i, (a, b, why) in enumerate(study.headline):
        p = paired.get((a, b))
        if p is None:
            continue
        lo, hi = p["ci"]
        name = f"**{a} − {b}** ({why})" if i == 0 else f"{a} − {b} ({why})"
        row = [name, f"{p['diff']:+.1f} [{lo:+.1f}, {hi:+.1f}]", paired_reading(lo, hi)]
        rows.append(row + (seed_columns(p) if with_seeds else []) + [",".join(map(str, p["seeds"]))])
    head = ["comparison (target accuracy, points)", "diff [95% CI]", "reading"]
    return table(head + (["seed t interval", "per seed"] if with_seeds else []) + ["seeds"], rows)


def tables(res: dict, study: Study) -> str:
    """All four study tables as one markdown string."""
    out: list[str] = []
    order, targets = list(study.order), [k for k, _ in study.targets]
    primary = study.headline[0][:2]
    summary = sorted(res["summary"], key=lambda s: order.index(s["method"]) if s["method"] in order else 99)
    runs_of = {m: [r for r in res["runs"] if r["method"] == m] for m in order}

    out.append("#### Accuracy (%, mean over seeds [95% interval], sd = spread across seeds)\n")
    rows = []
    for s in summary:
        d = s["datasets"]
        rows.append(
            [
                s["method"],
                ", ".join(map(str, s["seeds"])),
                fmt_cell(s["source_accuracy"]),
                fmt_cell(s["target_accuracy"]),
            ]
            + [fmt_cell(d.get(k)) for k in targets]
        )
    out.append(table(["method", "seeds", study.source, "target (macro)", *targets], rows))

    out.append("\n#### Paired differences (a − b, points, same items and seeds, 95% interval)\n")
    rows = []
    with_seeds = any(p.get("seed_ci") for p in res["paired"])
    for p in res["paired"]:
        lo, hi = p["ci"]
        name = f"**{p['a']} − {p['b']}**" if (p["a"], p["b"]) == primary else f"{p['a']} − {p['b']}"
        row = [
            name,
            p["role"],
            f"{p['diff']:+.1f}",
            f"[{lo:+.1f}, {hi:+.1f}]",
            f"{hi - lo:.1f}",
            paired_reading(lo, hi),
        ]
        rows.append(row + (seed_columns(p) if with_seeds else []) + [",".join(map(str, p["seeds"]))])
    head = ["a − b", "role", "diff", "95% CI", "width", "reading"]
    out.append(table(head + (["seed t interval", "per seed"] if with_seeds else []) + ["seeds"], rows))

    out.append("\n#### Output format on the target datasets (% of outputs, mean over seeds)\n")
    rows = []
    for m, runs in runs_of.items():
        if not runs:
            continue
        row = [m]
        for k in targets:
            row += [mean_of(runs, k, "arrow_rate"), mean_of(runs, k, "truncated_rate"), mean_of(runs, k, "format_rate")]
        scorer = [
            r["eval"]["datasets"][k].get("accuracy_by_scorer", {}).get("ftcot")
            for r in runs
            for k in targets
            if k in r["eval"]["datasets"]
        ]
        scorer = [v for v in scorer if v is not None]
        row.append(f"{sum(scorer) / len(scorer):.1f}" if scorer else "–")
        rows.append(row)
    head = ["method"]
    for _, label in study.targets:
        head += [f"{label} -->", f"{label} cut", f"{label} found"]
    out.append(table(head + ["target acc, ftcot scorer"], rows))

    out.append("\n#### Domain diagnostics of each trained run\n")
    rows = []
    for m, runs in runs_of.items():
        for r in sorted(runs, key=lambda r: r["seed"]):
            h, e = r.get("heldout") or {}, (r.get("explain") or {}).get("trained") or {}
            if not h and not e:
                continue
            loss, target_loss = h.get("heldout_lm_loss_source"), h.get("heldout_lm_loss_target")
            rows.append(
                [
                    m,
                    str(r["seed"]),
                    f"{h['heldout_probe_acc']:.2f}" if h.get("heldout_probe_acc") is not None else "–",
                    f"{h['heldout_head_acc']:.2f}" if h.get("heldout_head_acc") is not None else "–",
                    f"{loss:.3f}" if loss is not None else "–",
                    f"{target_loss:.3f}" if target_loss is not None else "–",
                    f"{e['probe_accuracy']:.3f}" if e.get("probe_accuracy") is not None else "–",
                    f"{e['pad_mean']:.3f}" if e.get("pad_mean") is not None else "–",
                ]
            )
    out.append(
        table(
            [
                "method",
                "seed",
                study.heldout,
                "held-out head",
                "held-out source CoT loss",
                "held-out target CoT loss",
                "explain probe",
                "explain PAD",
            ],
            rows,
        )
    )

    return "\n".join(out)


def write_between_markers(doc: Path, blocks: dict[str, str]) -> None:
    """Replace each generated block the document has, keeping the markers; refuse one with none."""
    body, found = doc.read_text(), 0
    for name, text in blocks.items():
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        if begin in body and end in body:
            head, rest = body.split(begin, 1)
            body, found = head + begin + "\n" + text + "\n" + end + rest.split(end, 1)[1], found + 1
    if not found:
        raise SystemExit(f"{doc}: none of the blocks {', '.join(blocks)} (<!-- NAME:begin --> ... <!-- NAME:end -->)")
    doc.write_text(body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, help="a report's results.json (default: the study's)")
    parser.add_argument("--study", type=int, choices=sorted(STUDIES), default=1)
    parser.add_argument("--write", type=Path, action="append", metavar="DOC", help="fill DOC's generated blocks")
    args = parser.parse_args()
    study = STUDIES[args.study]
    res = json.loads((args.results or Path(study.results)).read_text())
    blocks = dict(zip(study.blocks, (tables(res, study), headline(res, study))))
    for doc in args.write or []:
        write_between_markers(doc, blocks)
    if not args.write:
        print("\n\n".join(blocks.values()))
