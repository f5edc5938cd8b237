"""Study 2's pre-registered rules (docs/results.md, "Study 2"), applied to the committed results.

    python scripts/study2_rules.py budget   # learning curves (table + plot) and the step budget S
    python scripts/study2_rules.py pass     # the pass rule at S: in-distribution test vs prior, per family (pass.json)
    python scripts/study2_rules.py kept-dev # data/study2/dev-real-kept.jsonl: the real dev items of the kept datasets
    python scripts/study2_rules.py gap      # the gap check at S on the real dev items of the datasets pass.json kept
    python scripts/study2_rules.py over-steps [--evaluate]   # descriptive: real-test accuracy at S/4, S/2, S

Each reads only files under results/study2/ and prints a markdown table; nothing here is tuned.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "study2"
FAMILIES = ("synth_last_letter", "synth_coin_flip", "synth_tracking", "synth_date", "synth_arithmetic")
GRID, CEILING, BAR = (50, 100, 200, 300, 400), 400, 80.0
COUNTERPARTS = {  # each synthetic family's real dataset(s): a family that fails the pass rule takes them along
    "synth_last_letter": ("last_letter_concatenation",),
    "synth_coin_flip": ("coin_flip",),
    "synth_tracking": ("tracking_shuffled_objects",),
    "synth_date": ("date_understanding",),
    "synth_arithmetic": ("multiarith", "addsub"),
}
PASS = RESULTS / "learning" / "pass.json"  # the pass rule's outcome: which families (and real datasets) remain


def _curve(name: str, file: str = "dev.json") -> dict[int, dict]:
    out = {}
    for path in sorted((RESULTS / name).glob(f"step-*/{file}")):
        out[int(path.parent.name.split("-")[1])] = json.loads(path.read_text())
    return dict(sorted(out.items()))


def _flags(path: Path) -> dict[str, dict[str, bool]]:
    flags: dict[str, dict[str, bool]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        flags.setdefault(row["dataset"], {})[row["id"]] = row["correct"]
    return flags


def step_budget(curve: dict[int, dict]) -> tuple[int | None, str]:
    """S: the first grid step whose dev accuracy is >= 80% on every family; the ceiling if none (once it is in)."""
    for step in GRID:
        if step in curve and all(curve[step]["datasets"][k]["accuracy"] >= BAR for k in FAMILIES):
            return step, f"S = {step}: the first snapshot with every family >= {BAR:.0f}% on its dev items"
    if CEILING in curve:
        return CEILING, f"S = {CEILING}: no snapshot had every family >= {BAR:.0f}% (the ceiling)"
    return None, f"S not decided yet: snapshots evaluated so far {sorted(curve)}, none with every family >= {BAR:.0f}%"


def budget() -> int:
    curve = _curve("learning")
    if not curve:
        print("no learning-control snapshot evaluated yet (results/study2/learning/step-*/dev.json)")
        return 1
    print("| step | " + " | ".join(k.removeprefix("synth_") for k in FAMILIES) + " | mean |")
    print("|" + "---|" * (len(FAMILIES) + 2))
    for step, r in curve.items():
        accs = [r["datasets"][k]["accuracy"] for k in FAMILIES]
        print(f"| {step} | " + " | ".join(f"{a:.1f}" for a in accs) + f" | {sum(accs) / len(accs):.1f} |")
    _, reading = step_budget(curve)
    print(f"\n{reading}")
    _plot(curve)
    return 0


def _plot(curve: dict[int, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from prada.io import atomic_file

    fig, ax = plt.subplots(figsize=(6.4, 4))
    steps = list(curve)
    for k in FAMILIES:
        ax.plot(steps, [curve[s]["datasets"][k]["accuracy"] for s in steps], marker="o", label=k.removeprefix("synth_"))
    ax.axhline(BAR, color="grey", linestyle="--", linewidth=1, label=f"{BAR:.0f}% bar")
    ax.set(xlabel="optimizer step (batch 8)", ylabel="dev accuracy (%)", ylim=(0, 100))
    ax.set_title(
        "Study 2 learning control: ft-cot seed 0, synthetic sources\nSmolLM2-135M-Instruct (Q4_1 dequantised)",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_file(RESULTS / "learning" / "learning_curves.png") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def _inputs(files) -> tuple[int | None, str, list[Path]]:
    """S, its reading and the files a rule reads at S (`files(S)`); S None or a missing file: say what is missing."""
    S, reading = step_budget(_curve("learning"))
    if S is None:
        print(reading)
        return None, reading, []
    paths = files(S)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"{reading}; evaluate first (docs/results.md, 'Running it'): {', '.join(missing)}")
        return None, reading, []
    return S, reading, paths


def pass_rule() -> int:
    from prada.evaluation.metrics import bootstrap_ci

    learning = RESULTS / "learning"
    S, reading, paths = _inputs(
        lambda S: [learning / f"step-{S}" / "test.predictions.jsonl", learning / "prior" / "test.predictions.jsonl"]
    )
    if S is None:
        return 1
    student, prior = paths
    a, b = _flags(student), _flags(prior)
    print(f"{reading}\n\n| family | ft-cot @ S | prior | ft-cot − prior [95% CI] | passes |\n|---|---|---|---|---|")
    families = {}
    for k in FAMILIES:
        acc = 100 * sum(a[k].values()) / len(a[k])
        base = 100 * sum(b[k].values()) / len(b[k])
        lo, hi = bootstrap_ci([a], [b], datasets=[k], n_boot=2000)
        ok = acc >= BAR and lo >= 20
        families[k] = {"accuracy": acc, "prior": base, "difference": acc - base, "ci": [lo, hi], "passes": ok}
        print(
            f"| {k} | {acc:.1f} | {base:.1f} | {acc - base:+.1f} [{lo:+.1f}, {hi:+.1f}] | {'yes' if ok else 'NO: dropped'} |"
        )
    kept = [k for k in FAMILIES if families[k]["passes"]]
    real = [d for k in kept for d in COUNTERPARTS[k]]
    print(f"\nkept families: {', '.join(kept) or 'none'}; real targets: {', '.join(real) or 'none'}")
    from prada.io import atomic_write_json

    atomic_write_json(PASS, {"S": S, "families": families, "kept_families": kept, "kept_real_datasets": real})
    return 0


def gap() -> int:
    S, _, paths = _inputs(
        lambda S: [
            RESULTS / "learning" / f"step-{S}" / "real-dev.json",
            RESULTS / "oracle-gapcheck" / f"step-{S}" / "dev.json",
        ]
    )
    if S is None:
        return 1
    if not PASS.exists():
        print(f"run the pass rule first: {PASS} is missing")
        return 1
    synthetic, oracle = paths
    syn, orc = json.loads(synthetic.read_text()), json.loads(oracle.read_text())
    keys = json.loads(PASS.read_text())["kept_real_datasets"]  # the targets the pass rule kept
    if not keys:
        print("the pass rule kept no family: no real target remains to check")
        return 1
    print("| dataset | synthetic ft-cot @ S | oracle @ S | gap |\n|---|---|---|---|")
    for k in keys:
        x, y = syn["datasets"][k]["accuracy"], orc["datasets"][k]["accuracy"]
        print(f"| {k} | {x:.1f} | {y:.1f} | {y - x:+.1f} |")
    g = sum(orc["datasets"][k]["accuracy"] - syn["datasets"][k]["accuracy"] for k in keys) / len(keys)
    verdict = "worth studying (>= 10 points)" if g >= 10 else "below 10 points: the pre-registered fallback applies"
    print(f"\nmacro gap {g:+.1f} points: {verdict}")
    return 0


KEPT_DEV = REPO / "data" / "study2" / "dev-real-kept.jsonl"


def kept_dev() -> int:
    """The gap check's items: dev-real.jsonl's lines of the real datasets the pass rule kept, in file order."""
    if not PASS.exists():
        print(f"run the pass rule first: {PASS} is missing")
        return 1
    kept = set(json.loads(PASS.read_text())["kept_real_datasets"])
    lines = [
        t for t in (KEPT_DEV.parent / "dev-real.jsonl").read_text().splitlines() if json.loads(t)["dataset"] in kept
    ]
    KEPT_DEV.write_text("".join(t + "\n" for t in lines))
    print(f"{KEPT_DEV}: {len(lines)} items of {', '.join(sorted(kept))}")
    return 0


KEPT_TEST = REPO / "data" / "study2" / "test-real-kept.jsonl"
REPORTED_RUNS = REPO / "runs" / "study2-synth2real" / "runs"  # `prada run`'s folders of the reported fold
OVER_STEPS = RESULTS / "synth2real" / "snapshots"  # committed: <run>/step-N/real-test.{json,predictions.jsonl}


def kept_test(data: Path = REPO / "data" / "study2" / "synth2real") -> Path:
    """The reported fold's real test items (the kept datasets' full test sets), one file for `prada eval --data`."""
    kept = json.loads(PASS.read_text())["kept_real_datasets"]
    lines = [t for k in kept for t in (data / k / "test.jsonl").read_text().splitlines() if t.strip()]
    KEPT_TEST.write_text("".join(t + "\n" for t in lines))
    return KEPT_TEST


SNAPSHOT_SEEDS = (0, 1)  # seed 0's snapshots of ft-cot and prada are lost, so seed 1 too (docs/results.md)


def evaluate_snapshots(runs: Path = REPORTED_RUNS, bin_dir: Path = REPO / ".venv" / "bin") -> Iterator[Path]:
    """`prada eval` of every snapshot of the reported fold's SNAPSHOT_SEEDS on the kept real test items, copied
    under OVER_STEPS (never weights); a snapshot already there is skipped. Yields each folder once it is written,
    so that a caller commits it before the next evaluation starts."""
    test = KEPT_TEST if KEPT_TEST.exists() else kept_test()
    snapshots = [s for seed in SNAPSHOT_SEEDS for s in runs.glob(f"*__seed{seed}/snapshots/step-*")]
    for snap in sorted(snapshots):
        dest = OVER_STEPS / snap.parent.parent.name / snap.name
        if (dest / "real-test.json").exists():
            continue
        out = snap / "real-test.json"
        if not out.exists():
            cmd = [
                str(bin_dir / "prada"),
                "eval",
                "--quiet",
                "--run",
                str(snap),
                "--data",
                str(test),
                "--out",
                str(out),
            ]
            subprocess.run(cmd, check=True)
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("real-test.json", "real-test.predictions.jsonl", "real-test.generation.json"):
            if (snap / name).exists():
                shutil.copy2(snap / name, dest / name)
        yield dest


def over_steps(evaluate: bool = False) -> int:
    """Descriptive only (no rule reads it): each trained run's accuracy on the kept real test sets at S/4, S/2
    (its snapshots, where evaluated) and S (the run's own eval.json), per method and seed."""
    if evaluate:
        for dest in evaluate_snapshots():
            rel = dest.relative_to(REPO)
            subprocess.run(
                [
                    "bash",
                    str(REPO / "scripts" / "commit_results.sh"),
                    str(rel),
                    f"Study 2, descriptive: {rel.parent.name} at {dest.name} on the real test items",
                ],
                check=True,
                cwd=REPO,
            )
    kept = json.loads(PASS.read_text())["kept_real_datasets"]
    rows = []
    for run in sorted(
        (RESULTS / "synth2real" / "runs").glob("*__seed*"), key=lambda r: (int(r.name.rsplit("seed", 1)[1]), r.name)
    ):
        final = run / "eval.json"
        snapshots = sorted((OVER_STEPS / run.name).glob("step-*/real-test.json"))
        if not final.exists() or not (run / "train_done.json").exists() or not snapshots:
            continue  # untrained methods have no steps; a run without an evaluated snapshot has one point
        points = {int(path.parent.name.split("-")[1]): path for path in snapshots}
        points[json.loads((run / "train_done.json").read_text())["steps"]] = final
        method, seed = run.name.split("__")[0], run.name.rsplit("seed", 1)[1]
        for step, path in sorted(points.items()):
            acc = json.loads(path.read_text())["datasets"]
            per = [acc[k]["accuracy"] for k in kept]
            rows.append((method, seed, step, per, sum(per) / len(per)))
    if not rows:
        print("no trained run of the reported fold has an evaluated snapshot yet")
        return 1
    print(f"| method | seed | step | {' | '.join(kept)} | macro |\n|---|---|---|{'---|' * len(kept)}---|")
    for method, seed, step, per, macro in rows:
        print(f"| {method} | {seed} | {step} | {' | '.join(f'{a:.1f}' for a in per)} | {macro:.1f} |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rule", choices=("budget", "pass", "kept-dev", "gap", "over-steps"))
    parser.add_argument("--evaluate", action="store_true", help="over-steps: evaluate and commit new snapshots first")
    a = parser.parse_args()
    if a.rule == "over-steps":
        return over_steps(a.evaluate)
    return {"budget": budget, "pass": pass_rule, "kept-dev": kept_dev, "gap": gap}[a.rule]()


if __name__ == "__main__":
    sys.exit(main())
