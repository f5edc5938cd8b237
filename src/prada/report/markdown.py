"""report.md: tables per dataset, per domain and source vs target (mean [95% CI]), plots, explain links."""

from __future__ import annotations

from prada.methods.registry import adversary_pairs, method_spec
from prada.report.environment import describe

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


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A GitHub markdown table, one string per line."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def paired_reading(lo: float, hi: float) -> str:
    """The pre-registered reading of a paired a − b interval: only one that excludes 0 names a winner."""
    return "a better" if lo > 0 else "b better" if hi < 0 else "no difference shown"


def _source_target(results: dict) -> list[str]:
    rows = [
        [
            s["method"],
            s["fold"],
            ", ".join(s["source_domains"]) or "–",
            ", ".join(s["target_domains"]) or "–",
            fmt_cell(s["source_accuracy"]),
            fmt_cell(s["target_accuracy"]),
            fmt_cell(s["mean_accuracy"]),
            str(len(s["seeds"])),
        ]
        for s in results["summary"]
    ]
    out = ["## Source vs target", ""]
    out += markdown_table(
        ["method", "fold", "source domains", "target domains", "source acc", "target acc", "mean acc", "seeds"], rows
    )
    out += [
        "",
        "Source and target are different datasets, so their difference is no measure of generalisation: compare "
        "methods on the same datasets (paired differences below), and a target dataset with its in-domain accuracy "
        "(per-dataset tables, where another fold trained on it).",
    ]
    if results.get("across_folds"):
        out += ["", "### Across folds (each fold's target is a different domain)", ""]
        out += markdown_table(
            ["method", "folds", "source acc", "target acc", "mean acc"],
            [
                [
                    a["method"],
                    ", ".join(a["folds"]),
                    fmt_cell(a["source_accuracy"]),
                    fmt_cell(a["target_accuracy"]),
                    fmt_cell(a["mean_accuracy"]),
                ]
                for a in results["across_folds"]
            ],
        )
    return out


def _paired(results: dict) -> list[str]:
    pairs = results.get("paired") or []
    if not pairs:
        return []
    rows = []
    for p in pairs:
        lo, hi = p["ci"] if p.get("ci") else (None, None)
        verdict = "–" if lo is None else paired_reading(lo, hi)
        ci = f"[{lo:+.1f}, {hi:+.1f}]" if lo is not None else "–"
        seed_ci = "[{:+.1f}, {:+.1f}]".format(*p["seed_ci"]) if p.get("seed_ci") else "–"
        per_seed = ", ".join(f"{d:+.1f}" for d in p.get("per_seed") or [])
        rows.append(
            [
                f"{p['a']} − {p['b']}",
                p["fold"],
                p["role"],
                f"{p['diff']:+.1f}",
                ci,
                seed_ci,
                per_seed or "–",
                verdict,
                str(len(p["seeds"])),
                str(p["n_items"]),
            ]
        )
    return [
        "",
        "## Paired differences (a − b, accuracy points)",
        "",
        "Same test items and seeds for both methods; the 95% interval comes from the paired bootstrap (see the top), "
        "the seed interval from t over the seeds' own paired differences (listed per seed; three seeds that agree "
        "are p = 0.125 one-sided by themselves). An interval that contains 0 shows no difference at this sample size.",
        "",
        *markdown_table(
            ["a − b", "fold", "role", "diff", "95% CI", "seed 95% CI", "per seed", "reading", "seeds", "items/seed"],
            rows,
        ),
    ]


def _rates(results: dict) -> list[str]:
    rows = []
    for s in results["summary"]:
        for k, info in s["datasets"].items():
            if "arrow_rate" in info:
                rows.append(
                    [
                        s["method"],
                        s["fold"],
                        k,
                        info["role"],
                        f"{info['arrow_rate']:.0f}",
                        f"{info['truncated_rate']:.0f}",
                        f"{info['format_rate']:.0f}",
                    ]
                )
    if not rows:
        return []
    budgets = sorted({r["eval"].get("max_new_tokens") for r in results["runs"] if r["eval"].get("max_new_tokens")})
    return [
        "",
        "## Output format",
        "",
        f"Percent of outputs with `-->`, cut at the generation budget ({', '.join(map(str, budgets)) or '–'} new tokens), "
        "and with an answer of the right type extracted. A cut output is scored by the fallback rule (last candidate), "
        "so a high truncation rate means the budget, not the student, decides part of the score.",
        "",
        *markdown_table(["method", "fold", "dataset", "role", "--> %", "truncated %", "answer found %"], rows),
    ]


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
        out += markdown_table(
            ["domain", "role", *methods],
            [[d, info["role"], *(fmt_cell(s["domains"].get(d)) for s in rows)] for d, info in first["domains"].items()],
        )
        out += ["", "### Per dataset", ""]
        pub_cols = list(PUBLISHED_COLUMNS) if any(k in published for k in first["datasets"]) else []
        in_domain = any(info.get("in_domain_accuracy") is not None for s in rows for info in s["datasets"].values())
        ref_cols = [f"{m} in-domain" for m in methods] if in_domain else []
        header = ["dataset", "domain", "role", "n", *methods, *ref_cols, *(PUBLISHED_COLUMNS[c] for c in pub_cols)]
        out += markdown_table(
            header,
            [
                [
                    k,
                    info["domain"],
                    info["role"],
                    str(info["n"]),
                    *(fmt_cell(s["datasets"].get(k)) for s in rows),
                    *(_num(s["datasets"].get(k, {}).get("in_domain_accuracy")) for s in rows if in_domain),
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
        *markdown_table(
            ["run", "probe acc (trained)", "probe acc (untrained)", "PAD (trained)", "PAD (untrained)", "details"], rows
        ),
    ]


def _explain_paired(results: dict) -> list[str]:
    """Adversary vs no adversary on the same fold and seed: the control `prada explain` alone cannot give."""
    by_key = {(r["method"], r["fold"], r["seed"]): r for r in results["runs"] if r.get("explain")}
    rows = []
    for a, b in adversary_pairs():
        for (m, fold, seed), ra in by_key.items():
            rb = by_key.get((b, fold, seed))
            if m != a or rb is None:
                continue
            ea, eb = ra["explain"]["trained"], rb["explain"]["trained"]
            rows.append(
                [
                    f"{a} vs {b}",
                    fold,
                    str(seed),
                    _num2(ea.get("probe_accuracy")),
                    _num2(eb.get("probe_accuracy")),
                    _num2(ea.get("pad_mean")),
                    _num2(eb.get("pad_mean")),
                ]
            )
    if not rows:
        return []
    return [
        "",
        "### With vs without the adversary (same fold and seed)",
        "",
        *markdown_table(
            ["pair", "fold", "seed", "probe (with)", "probe (without)", "PAD (with)", "PAD (without)"], rows
        ),
    ]


def _heldout(results: dict) -> list[str]:
    """Each trained run's held-out domain diagnostics at its last check: is the domain still readable?"""
    rows = []
    for r in results["runs"]:
        h = r.get("heldout")
        if not h:
            continue
        loss, target_loss = h.get("heldout_lm_loss_source"), h.get("heldout_lm_loss_target")
        rows.append(
            [
                r["method"],
                r["fold"],
                str(r["seed"]),
                str(h.get("step")),
                _num2(h.get("heldout_probe_acc")),
                _num2(h.get("heldout_probe_majority")),
                _num2(h.get("heldout_head_acc")),
                "–" if loss is None else f"{loss:.3f}",
                "–" if target_loss is None else f"{target_loss:.3f}",
            ]
        )
    if not rows:
        return []
    return [
        "",
        "### Held-out domain diagnostics (last check in training)",
        "",
        "A fresh PCA-8 probe and the adversary's own head classify the domain of held-out test questions from the "
        "pooled features; invariance means the probe near the majority rate, not just the head (heldout_domain.png).",
        "",
        *markdown_table(
            ["method", "fold", "seed", "step", "probe", "majority", "head", "source CoT loss", "target CoT loss"], rows
        ),
    ]


def _num2(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


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
                str(c["adversary"]["lambda_max"]) if method_spec(r["method"]).adversary else "–",
            ]
        )
    return [
        "",
        "## Runs",
        "",
        *markdown_table(
            ["folder", "method", "fold", "seed", "student", "backbone", "steps", "batch", "lr", "λ_max"], rows
        ),
        "",
        *sorted(
            {
                f"- `{r['config']['student']}`: {r['config'].get('student_label', r['config']['student'])}"
                for r in results["runs"]
            }
        ),
        *sorted(
            {
                f"- `{r['method']}`: {r['config']['method_label']}"
                for r in results["runs"]
                if r["config"].get("method_label", r["method"]) != r["method"]
            }
        ),
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
        f"Accuracy in percent, as `mean [{ci['level']:.0%} CI]`; `sd`: standard deviation across seeds. A domain (and "
        f"source/target/mean) is the macro mean of its datasets. Intervals ({ci['n_boot']} resamples): {ci['method']}. "
        "See docs/protocol.md.",
        "",
    ]
    if results.get("environment"):
        lines += [describe(results["environment"]), ""]
    exp = results.get("experiment") or {}
    if exp.get("planned_runs") and exp.get("finished_runs", 0) < exp["planned_runs"]:
        lines += [
            f"**Partial report: {exp['finished_runs']} of {exp['planned_runs']} planned runs have finished** "
            "(`prada report`); pairs and seeds below are the finished ones only.",
            "",
        ]
    lines += _source_target(results)
    lines += _paired(results)
    plots = results.get("plots") or []
    if plots:
        lines += ["", "## Plots", "", *(f"![{p}]({p})" for p in plots)]
    lines += _per_fold(results)
    lines += _rates(results)
    lines += _explain(results)
    lines += _explain_paired(results)
    lines += _heldout(results)
    lines += _runs(results)
    return "\n".join(lines) + "\n"
