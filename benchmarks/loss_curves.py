"""Does a speed switch that changes the arithmetic still learn the same? Two training runs, alike but for it.

    python benchmarks/loss_curves.py --config configs/study2-learning.yaml --switch train.freeze_embeddings=true \
        --steps 200 --workdir /tmp/lc-freeze

Trains the config's method (or --method) twice with the same seed, data order and settings (`--set` overrides apply to both), once
as it is and once with `--switch`, logging the held-out source CoT loss every `--eval-every` steps
(`train.eval_every`: rationales of up to 32 test questions per domain, never trained on). Prints one JSON
line: both curves, the last held-out losses and their ratio, the mean logged training tokens/s of each
run (a speed figure only when the machine was otherwise idle: see `host_before`/`host_after`; the
side-by-side speed figures come from train_throughput.py), and draws both curves in one PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import host_state, machine, print_last_line  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--switch", required=True, help="KEY=VALUE: the override whose effect on learning is measured")
    p.add_argument(
        "--config", default=None, help="a run config both runs start from (e.g. configs/study2-learning.yaml)"
    )
    p.add_argument("--method", default=None, help="override the config's method")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE for both runs (repeatable)")
    p.add_argument("--workdir", required=True, help="the two run folders go here (kept: resumable, inspectable)")
    p.add_argument("--plot", default=None, help="PNG path (default WORKDIR/loss_curves.png)")
    return p.parse_args(argv)


def run_config(a: argparse.Namespace, extra: list[str]):
    from prada.config import load_config

    method = [f"method={a.method}"] if a.method else []
    return load_config(
        a.config,
        [
            *method,
            f"seed={a.seed}",
            f"train.max_steps={a.steps}",
            f"train.eval_every={a.eval_every}",
            "train.save_every=25",
            "train.snapshot_steps=[]",
            *a.set,
            *extra,
        ],
    )


def curve(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line.strip()]
    held = {r["step"]: r["heldout_lm_loss_source"] for r in rows if r.get("heldout_lm_loss_source") is not None}
    rates = [r["tokens_per_s"] for r in rows if r.get("tokens_per_s")]
    return {
        "heldout_lm_loss_source": held,
        "train_lm_loss": {r["step"]: r["lm_loss"] for r in rows},
        "mean_logged_tokens_per_s": sum(rates) / len(rates) if rates else None,
    }


def plot(curves: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for name, c in curves.items():
        held = c["heldout_lm_loss_source"]
        ax.plot(list(held), list(held.values()), marker="o", label=f"{name}: held-out source CoT loss")
        train = c["train_lm_loss"]
        ax.plot(list(train), list(train.values()), alpha=0.25, label=f"{name}: training loss (per step)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("CoT cross-entropy")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    from prada.train.loop import train

    host_before, t0 = host_state(), time.perf_counter()
    work = Path(a.workdir)
    runs = {"base": (work / "base", []), a.switch: (work / "switched", [a.switch])}
    curves = {}
    for name, (folder, extra) in runs.items():
        cfg = run_config(a, extra)
        a.method = cfg.method
        resume = folder if (folder / "config.yaml").exists() and not (folder / "train_done.json").exists() else None
        print(f"[loss_curves] {name} -> {folder}", file=sys.stderr, flush=True)
        train(None if resume else cfg, None if resume else folder, resume=resume, progress=True)
        curves[name] = curve(folder)
    base, switched = curves["base"], curves[a.switch]
    last = max(base["heldout_lm_loss_source"])
    out = {
        "benchmark": "loss_curves",
        "switch": a.switch,
        "method": a.method,
        "model": cfg.student.model,
        "data_dir": cfg.data.data_dir,
        "config": a.config,
        "steps": a.steps,
        "set": a.set,
        "machine": machine(),
        "last_heldout_step": last,
        "base_last_heldout_loss": base["heldout_lm_loss_source"][last],
        "switched_last_heldout_loss": switched["heldout_lm_loss_source"][last],
        "heldout_loss_ratio": switched["heldout_lm_loss_source"][last] / base["heldout_lm_loss_source"][last],
        "base_mean_logged_tokens_per_s": base["mean_logged_tokens_per_s"],
        "switched_mean_logged_tokens_per_s": switched["mean_logged_tokens_per_s"],
        "curves": {k: {"heldout_lm_loss_source": v["heldout_lm_loss_source"]} for k, v in curves.items()},
        "wall_s": time.perf_counter() - t0,
        "host_before": host_before,
        "host_after": host_state(),
    }
    path = Path(a.plot) if a.plot else work / "loss_curves.png"
    plot(curves, path, f"{a.method}, {cfg.student.model}, {Path(cfg.data.data_dir).name}: base vs {a.switch}")
    out["plot"] = str(path)
    print_last_line(out)
    return out


if __name__ == "__main__":
    main()
