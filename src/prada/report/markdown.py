"""report.md: tables per dataset, per domain and source vs target (mean [95% CI]), plots, explain links."""

from __future__ import annotations

# Published Fine-tune-CoT accuracies (%), Ho, Schmid and Yun, "Large Language Models Are Reasoning
# Teachers", ACL 2023 (arXiv 2212.10071): same 12 datasets and the same text-davinci-002 Zero-shot-CoT
# teacher, one student fine-tuned per dataset (an in-domain setting), as listed in
# ../shared/data/README.md. Shown beside our numbers where the dataset keys match.
PUBLISHED_FTCOT: dict[str, dict[str, float]] = {
    key: {"teacher": t, "gpt2_124m": g, "flan_t5_base": f}
    for key, t, g, f in [
        ("single_eq", 81.5, 3.95, 4.61),
        ("addsub", 76.7, 5.88, 9.24),
        ("multiarith", 78.8, 8.33, 12.22),
        ("gsm8k", 42.2, 3.03, 4.40),
        ("aqua", 29.7, 22.44, 29.13),
        ("svamp", 64.2, 4.33, 6.00),
        ("date_understanding", 67.6, 25.23, 83.78),
        ("tracking_shuffled_objects", 53.2, 38.67, 48.89),
        ("last_letter_concatenation", 57.7, 4.67, 50.00),
        ("coin_flip", 90.0, 77.33, 100.0),
        ("commonsense_qa", 60.1, 22.69, 59.05),
        ("strategy_qa", 53.5, 55.75, 59.97),
    ]
}
PUBLISHED_COLUMNS = {
    "teacher": "teacher (davinci-002 ZS-CoT)",
    "gpt2_124m": "FT-CoT GPT-2 124M",
    "flan_t5_base": "FT-CoT Flan-T5-base",
}


def fmt_cell(cell: dict | None) -> str:
    """`45.0 [32.5, 57.5]` (+ ` sd 2.1` across seeds); `–` when there is nothing to show."""
    if not cell or cell.get("accuracy") is None:
        return "–"
    text = f"{cell['accuracy']:.1f}"
    if cell.get("ci"):
        lo, hi = cell["ci"]
        text += f" [{lo:.1f}, {hi:.1f}]"
    if cell.get("seed_sd") is not None:
        text += f" sd {cell['seed_sd']:.1f}"
    return text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _source_target(results: dict) -> list[str]:
    rows = []
    for s in results["summary"]:
        gap = f"{s['gap']:+.1f}" if s.get("gap") is not None else "–"
        rows.append(
            [
                s["method"],
                s["fold"],
                ", ".join(s["source_domains"]) or "–",
                ", ".join(s["target_domains"]) or "–",
                fmt_cell(s["source_accuracy"]),
                fmt_cell(s["target_accuracy"]),
                gap,
                fmt_cell(s["mean_accuracy"]),
                str(len(s["seeds"])),
            ]
        )
    out = ["## Source vs target", ""]
    out += _table(
        [
            "method",
            "fold",
            "source domains",
            "target domains",
            "source acc",
            "target acc",
            "gap (S-T)",
            "mean acc",
            "seeds",
        ],
        rows,
    )
    if results.get("across_folds"):
        out += ["", "### Across folds (each fold's target is a different domain)", ""]
        out += _table(
            ["method", "folds", "source acc", "target acc", "gap (S-T)", "mean acc"],
            [
                [
                    a["method"],
                    ", ".join(a["folds"]),
                    fmt_cell(a["source_accuracy"]),
                    fmt_cell(a["target_accuracy"]),
                    f"{a['gap']:+.1f}" if a.get("gap") is not None else "–",
                    fmt_cell(a["mean_accuracy"]),
                ]
                for a in results["across_folds"]
            ],
        )
    return out


def _per_fold(results: dict) -> list[str]:
    out: list[str] = []
    folds: dict[str, list[dict]] = {}
    for s in results["summary"]:
        folds.setdefault(s["fold"], []).append(s)
    published = results.get("published") or {}
    for fold, rows in folds.items():
        methods = [s["method"] for s in rows]
        first = rows[0]
        out += ["", f"## Fold `{fold}`", "", "### Per domain", ""]
        out += _table(
            ["domain", "role", *methods],
            [[d, info["role"], *(fmt_cell(s["domains"].get(d)) for s in rows)] for d, info in first["domains"].items()],
        )
        out += ["", "### Per dataset", ""]
        pub_cols = list(PUBLISHED_COLUMNS) if any(k in published for k in first["datasets"]) else []
        header = ["dataset", "domain", "role", "n", *methods, *(PUBLISHED_COLUMNS[c] for c in pub_cols)]
        out += _table(
            header,
            [
                [
                    k,
                    info["domain"],
                    info["role"],
                    str(info["n"]),
                    *(fmt_cell(s["datasets"].get(k)) for s in rows),
                    *(f"{published[k][c]:.1f}" if k in published else "–" for c in pub_cols),
                ]
                for k, info in first["datasets"].items()
            ],
        )
        if pub_cols:
            out += [
                "",
                "Published columns: Fine-tune-CoT (Ho et al., ACL 2023), one student per dataset trained on that "
                "dataset (in-domain), on their test sets (prada splits gsm8k, aqua and commonsense_qa differently: see "
                "docs/data.md); ours may use other students, slices and protocols. Context, not a like-for-like comparison.",
            ]
    return out


def _explain(results: dict) -> list[str]:
    rows = []
    for r in results["runs"]:
        ex = r.get("explain")
        if not ex:
            continue
        num = lambda v, f: f.format(v) if v is not None else "–"  # noqa: E731
        rows.append(
            [
                r["run"],
                num(ex["trained"]["probe_accuracy"], "{:.2f}"),
                num(ex["untrained"]["probe_accuracy"], "{:.2f}"),
                num(ex["trained"]["pad_mean"], "{:.2f}"),
                num(ex["untrained"]["pad_mean"], "{:.2f}"),
                f"[explain.md]({ex['path']})",
            ]
        )
    if not rows:
        return []
    return [
        "",
        "## Domain alignment (prada explain)",
        "",
        "Linear probe: 5-fold cross-validated accuracy of a fresh logistic regression predicting the domain from "
        "pooled question features (lower = domains less separable). PAD: proxy A-distance 2(1-2·err), mean over domain "
        "pairs (0 = indistinguishable, 2 = perfectly separable). Untrained = the base student before fine-tuning.",
        "",
        *_table(
            ["run", "probe acc (trained)", "probe acc (untrained)", "PAD (trained)", "PAD (untrained)", "details"], rows
        ),
    ]


def _runs(results: dict) -> list[str]:
    rows = []
    for r in results["runs"]:
        c = r["config"]
        steps = (r.get("train") or {}).get("steps", "–")
        rows.append(
            [
                f"`{r['dir']}`",
                r["method"],
                r["fold"],
                str(r["seed"]),
                c["student"],
                c["backbone"],
                str(steps),
                str(c["train"]["batch_size"]),
                str(c["train"]["lr"]),
                str(c["adversary"]["lambda_max"]) if r["method"] in ("dann", "prada") else "–",
            ]
        )
    return [
        "",
        "## Runs",
        "",
        *_table(["folder", "method", "fold", "seed", "student", "backbone", "steps", "batch", "lr", "λ_max"], rows),
    ]


def render_report(results: dict) -> str:
    """The whole report.md as text."""
    ci = results["ci"]
    lines = [
        f"# Experiment `{results['name']}`",
        "",
        f"Protocol: **{results['protocol']}**; methods: {', '.join(results['methods'])}; folds: {', '.join(results['folds'])}; "
        f"seeds: {', '.join(map(str, results['seeds']))}.",
        "",
        f"Accuracy in percent, as `mean [{ci['level']:.0%} CI]`. A domain (and source/target/mean) is the macro mean of its "
        f"datasets. CIs are percentile bootstraps ({ci['n_boot']} resamples) over test items, resampled within each dataset "
        "(and each seed when there are several, where `sd` is the standard deviation across seeds). See docs/protocol.md.",
        "",
    ]
    lines += _source_target(results)
    plots = results.get("plots") or []
    if plots:
        lines += ["", "## Plots", "", *(f"![{p}]({p})" for p in plots)]
    lines += _per_fold(results)
    lines += _explain(results)
    lines += _runs(results)
    return "\n".join(lines) + "\n"
