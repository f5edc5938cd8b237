"""Does the adversary do its job under some setting? Short runs on a study's TUNING fold only.

`--study 1` (study 1): every setting trains `prada` (or `ptune`, the no-adversary reference) on ftcot12
with target domain `symbolic`; `--study 2`: on the synthetic difficulty shift (data/study2/difficulty,
difficulty 1 -> 3, `adversary.labels: origin`, scripts/study2_data.py). Both log the held-out
diagnostics every few steps (docs/results.md has each study's protocol).
A setting PASSES when, at the last logged step, the fresh capacity-limited probe's held-out domain
accuracy is within 10 points of the majority rate AND the held-out source CoT loss is within 5% of
ptune's at the same step. Runs resume (a killed sweep loses at most a checkpoint interval); each
finished run's train_log.jsonl is copied to results/control/<setting>/, never weights.

    python scripts/positive_control.py --source ../shared/data            # every setting, then the table
    python scripts/positive_control.py --source ../shared/data --only ptune,default
    python scripts/positive_control.py --table-only                       # table + plot from results/control
    python scripts/positive_control.py --study 2                          # study 2's tuning fold -> results/study2/control
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "control"  # study 2: results/study2/control (main() sets it)

# The common settings: fixed before any control run, the study's training settings at short scale.
BASE = [
    "data.benchmark=ftcot12",
    "data.target_domains=[symbolic]",
    "data.max_train_per_dataset=24",
    "data.max_test_per_dataset=32",
    "student.model=smollm2-135m",
    "student.max_length=320",
    "train.max_steps=24",
    "train.batch_size=8",
    "train.lr=1.5e-4",
    "train.warmup_steps=2",
    "train.precision=fp32",
    "train.eval_every=6",
    "train.save_every=12",
    "adversary.target_batch_size=4",
    "seed=0",
]

# name -> (method, overrides). Levers of issue 16: lambda_max, constant vs ramp, head lr equal to the
# backbone's, a weaker head, the feature layer, pooling, and the confusion loss.
SETTINGS: dict[str, tuple[str, list[str]]] = {
    "ptune": ("ptune", []),
    "default": ("prada", []),  # lambda 0.1 dann ramp, head lr 1e-3, MLP head, top layer, mean pooling
    "grl-l1-const-headlr": (
        "prada",
        ["adversary.lambda_max=1.0", "adversary.schedule=constant", "adversary.lr=1.5e-4"],
    ),
    "grl-l0.3-const-headlr-linear-mid": (
        "prada",
        [
            "adversary.lambda_max=0.3",
            "adversary.schedule=constant",
            "adversary.lr=1.5e-4",
            "adversary.head=linear",
            "adversary.layer=15",
        ],
    ),
    "confusion-l1-const-mid": (
        "prada",
        ["adversary.loss=confusion", "adversary.lambda_max=1.0", "adversary.schedule=constant", "adversary.layer=15"],
    ),
    "confusion-l3-const-mid-tokens": (
        "prada",
        [
            "adversary.loss=confusion",
            "adversary.lambda_max=3.0",
            "adversary.schedule=constant",
            "adversary.layer=15",
            "adversary.pooling=tokens",
        ],
    ),
}


# Study 2 (docs/results.md, "Study 2", step 2), fixed in its pre-registration before any of these runs.
BASE_STUDY2 = [
    "data.benchmark=none",
    f"data.data_dir={REPO / 'data' / 'study2' / 'difficulty'}",
    "data.target_domains=[hard]",
    "data.max_test_per_dataset=32",
    "student.model=smollm2-135m",
    "student.max_length=320",
    "train.max_steps=60",
    "train.batch_size=8",
    "train.lr=1.5e-4",
    "train.warmup_steps=2",
    "train.precision=fp32",
    "train.eval_every=15",
    "train.save_every=15",
    "adversary.labels=origin",
    "adversary.target_batch_size=4",
    "seed=0",
]
SETTINGS_STUDY2: dict[str, tuple[str, list[str]]] = {
    "ptune": ("ptune", []),
    "a-default": ("prada", []),  # lambda 0.1 dann ramp, head lr 1e-3, top layer, GRL
    "b-grl-l0.3-const-mid": (
        "prada",
        ["adversary.lambda_max=0.3", "adversary.schedule=constant", "adversary.layer=15"],
    ),
    "c-grl-l1-const-headlr": (
        "prada",
        ["adversary.lambda_max=1.0", "adversary.schedule=constant", "adversary.lr=1.5e-4"],
    ),
    "d-confusion-l1-const-mid": (
        "prada",
        ["adversary.loss=confusion", "adversary.lambda_max=1.0", "adversary.schedule=constant", "adversary.layer=15"],
    ),
}


def run_setting(name: str, source: str, work: Path, data_dir: Path) -> Path:
    from prada.config import load_config
    from prada.train.loop import train

    method, overrides = SETTINGS[name]
    run_dir = work / name
    data = [f"data.source={source}", f"data.data_dir={data_dir}"] if BASE[0] != "data.benchmark=none" else []
    cfg = load_config(None, [*BASE, *data, f"method={method}", *overrides])
    has_checkpoint = (run_dir / "checkpoint").exists() or (run_dir / ".checkpoint.old").exists()
    train(
        None if has_checkpoint else cfg, None if has_checkpoint else run_dir, resume=run_dir if has_checkpoint else None
    )
    dest = RESULTS / name
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(run_dir / "train_log.jsonl", dest / "train_log.jsonl")
    (dest / "setting.json").write_text(json.dumps({"method": method, "overrides": overrides, "base": BASE}, indent=2))
    return dest


def last_heldout(rows: list[dict]) -> dict:
    held = [r for r in rows if "heldout_probe_majority" in r]
    return held[-1] if held else {}


def table() -> dict:
    """Every setting's figures at the last held-out evaluation, and the pass/fail verdict."""
    logs = {}
    for d in sorted(RESULTS.glob("*/train_log.jsonl")):
        logs[d.parent.name] = [json.loads(line) for line in d.read_text().splitlines() if line.strip()]
    ref = last_heldout(logs.get("ptune", []))
    out = {}
    for name, rows in logs.items():
        last = last_heldout(rows)
        if not last:
            continue
        probe, majority = last.get("heldout_probe_acc"), last["heldout_probe_majority"]
        loss, ref_loss = last.get("heldout_lm_loss_source"), ref.get("heldout_lm_loss_source")
        probe_ok = probe is not None and probe - majority <= 0.10
        loss_ok = loss is not None and ref_loss is not None and loss <= 1.05 * ref_loss
        out[name] = {
            "step": last["step"],
            "heldout_probe_acc": probe,
            "heldout_probe_full_acc": last.get("heldout_probe_full_acc"),
            "heldout_probe_majority": majority,
            "heldout_head_acc": last.get("heldout_head_acc"),
            "heldout_lm_loss_source": loss,
            "cot_loss_vs_ptune": round(loss / ref_loss, 4) if loss and ref_loss else None,
            "train_domain_acc": last.get("domain_acc"),
            "passes": bool(probe_ok and loss_ok) if name != "ptune" else None,
        }
    return out


def plot(path: Path) -> None:
    from prada.report.plots import plot_heldout_domain

    runs = {d.name: d for d in sorted(RESULTS.glob("*/")) if (d / "train_log.jsonl").exists()}
    fold = "target symbolic" if RESULTS.parent.name == "results" else "difficulty 1 -> 3, source vs target"
    plot_heldout_domain(runs, path, f"Positive control, tuning fold ({fold}), SmolLM2-135M-Instruct (Q4_1 dequantised)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--work", default=str(REPO / "runs" / "control"), help="run folders (weights stay here)")
    ap.add_argument("--only", default="", help="comma-separated setting names")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--study", type=int, choices=(1, 2), default=1, help="whose tuning fold (docs/results.md)")
    a = ap.parse_args()
    global BASE, SETTINGS, RESULTS
    if a.study == 2:
        BASE, SETTINGS, RESULTS = BASE_STUDY2, SETTINGS_STUDY2, REPO / "results" / "study2" / "control"
        if a.work == str(REPO / "runs" / "control"):
            a.work = str(REPO / "runs" / "study2" / "control")
    if not a.table_only:
        work = Path(a.work)
        names = [n for n in a.only.split(",") if n] or list(SETTINGS)
        for name in names:
            print(f"[control] {name}", file=sys.stderr)
            run_setting(name, a.source, work, work / "data-ftcot12")
    result = table()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "table.json").write_text(json.dumps(result, indent=2))
    plot(RESULTS / "heldout_probe.png")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
