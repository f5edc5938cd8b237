"""Does a speed switch that changes the arithmetic still learn the same? Two training runs, alike but for it.

    python benchmarks/loss_curves.py --config configs/study2-learning.yaml --switch train.freeze_embeddings=true \
        --steps 200 --workdir /tmp/lc-freeze

Trains the config's method (or --method) twice with the same seed, data order and settings (`--set` overrides apply to both), once
as it is and once with `--switch`, for each of `--seeds` (a pair per seed: one seed's trajectory says little
where training is noisy, as prada's adversarial game is), logging the held-out source CoT loss every `--eval-every` steps
(`train.eval_every`: rationales of up to 32 test questions per domain, never trained on). Prints one JSON
line: both curves, the last held-out losses and their ratio, the mean logged training tokens/s of each
run (a speed figure only when the machine was otherwise idle: see `host_before`/`host_after`; the
side-by-side speed figures come from train_throughput.py), per seed the two last held-out losses and their
ratio with the geometric mean of those ratios, and draws every curve in one PNG.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import host_state, machine, print_last_line  # noqa: E402


def seed_list(text: str) -> list[int]:
    """`0,1,2` -> [0, 1, 2]; argparse reports anything else as an invalid seed list."""
    try:
        seeds = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give seeds as integers separated by commas, e.g. 0,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: a seed appears twice")
    return seeds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--switch", required=True, help="KEY=VALUE: the override whose effect on learning is measured")
    p.add_argument(
        "--config", default=None, help="a run config both runs start from (e.g. configs/study2-learning.yaml)"
    )
    p.add_argument("--method", default=None, help="override the config's method")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--seeds", type=seed_list, default=[0], help="comma list, e.g. 0,1,2 (a pair of runs per seed)")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE for both runs (repeatable)")
    p.add_argument("--workdir", required=True, help="the two run folders go here (kept: resumable, inspectable)")
    p.add_argument("--plot", default=None, help="PNG path (default WORKDIR/loss_curves.png)")
    return p.parse_args(argv)


def run_config(a: argparse.Namespace, seed: int, extra: list[str]):
    from prada.config import load_config

    method = [f"method={a.method}"] if a.method else []
    return load_config(
        a.config,
        [
            *method,
            f"seed={seed}",
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


def plot(runs: dict[tuple[int, str], dict], path: Path, title: str) -> None:
    """Held-out curves: a colour per arm, a line style per seed; with one seed also the faint training losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(dict.fromkeys(name for _, name in runs))
    seeds = list(dict.fromkeys(seed for seed, _ in runs))
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for (seed, name), c in runs.items():
        colour = f"C{arms.index(name)}"
        held = c["heldout_lm_loss_source"]
        style = styles[seeds.index(seed) % len(styles)]
        label = f"{name}: held-out source CoT loss" + (f", seed {seed}" if len(seeds) > 1 else "")
        ax.plot(list(held), list(held.values()), style, color=colour, marker="o", label=label)
        if len(seeds) == 1:
            train = c["train_lm_loss"]
            ax.plot(
                list(train), list(train.values()), color=colour, alpha=0.25, label=f"{name}: training loss (per step)"
            )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("CoT cross-entropy")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    from prada.train.host_memory import configure_host_memory
    from prada.train.loop import train

    kept = configure_host_memory()  # PRADA_KEEP_FREED_MEMORY as `prada train` applies it: the logged tokens/s match
    host_before, t0 = host_state(), time.perf_counter()
    work = Path(a.workdir)
    runs: dict[tuple[int, str], dict] = {}
    for seed in a.seeds:
        pair = work if len(a.seeds) == 1 else work / f"seed{seed}"  # one seed: the layout of earlier lines
        for name, folder, extra in (("base", pair / "base", []), (a.switch, pair / "switched", [a.switch])):
            cfg = run_config(a, seed, extra)
            a.method = cfg.method
            resume = folder if (folder / "config.yaml").exists() and not (folder / "train_done.json").exists() else None
            print(f"[loss_curves] seed {seed}, {name} -> {folder}", file=sys.stderr, flush=True)
            train(None if resume else cfg, None if resume else folder, resume=resume, progress=True)
            runs[seed, name] = curve(folder)
    last = max(runs[a.seeds[0], "base"]["heldout_lm_loss_source"])
    per_seed = []
    for seed in a.seeds:
        base, switched = (runs[seed, k]["heldout_lm_loss_source"][last] for k in ("base", a.switch))
        per_seed.append({"seed": seed, "base": base, "switched": switched, "ratio": switched / base})
    mean = lambda key: sum(row[key] for row in per_seed) / len(per_seed)  # noqa: E731
    first = a.seeds[0]
    out = {
        "benchmark": "loss_curves",
        "switch": a.switch,
        "method": a.method,
        "model": cfg.student.model,
        "data_dir": cfg.data.data_dir,
        "config": a.config,
        "steps": a.steps,
        "set": a.set,
        "seeds": a.seeds,
        "machine": machine(),
        "last_heldout_step": last,
        "base_last_heldout_loss": mean("base"),  # means over the seeds
        "switched_last_heldout_loss": mean("switched"),
        "heldout_loss_ratio": mean("switched") / mean("base"),
        "heldout_loss_ratio_geomean": math.exp(sum(math.log(row["ratio"]) for row in per_seed) / len(per_seed)),
        "per_seed": per_seed,
        "base_mean_logged_tokens_per_s": runs[first, "base"]["mean_logged_tokens_per_s"],
        "switched_mean_logged_tokens_per_s": runs[first, a.switch]["mean_logged_tokens_per_s"],
        "curves": {
            name: {"heldout_lm_loss_source": runs[first, name]["heldout_lm_loss_source"]} for name in ("base", a.switch)
        },
        "curves_per_seed": {
            str(seed): {name: runs[seed, name]["heldout_lm_loss_source"] for name in ("base", a.switch)}
            for seed in a.seeds
        },
        "wall_s": time.perf_counter() - t0,
        "keep_freed_memory": kept,  # lines before 2026-12-05: not applied
        "host_before": host_before,
        "host_after": host_state(),
    }
    path = Path(a.plot) if a.plot else work / "loss_curves.png"
    seeds = f"seed {first}" if len(a.seeds) == 1 else f"seeds {','.join(map(str, a.seeds))}"
    plot(runs, path, f"{a.method}, {cfg.student.model}, {Path(cfg.data.data_dir).name}, {seeds}: base vs {a.switch}")
    out["plot"] = str(path)
    print_last_line(out)
    return out


if __name__ == "__main__":
    main()
