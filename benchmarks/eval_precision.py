"""A trained run's evaluation in fp32 and under bf16 autocast, side by side: seconds and new tokens per item.

    python benchmarks/eval_precision.py --run runs/study2-synth2real/runs/ptune__real__seed0 \
        --data data/study2/dev-real.jsonl --datasets coin_flip,multiarith,addsub --workdir /tmp/eval-precision

`train.precision` decides both training and `prada eval`'s autocast. This script copies the run's
weights and config twice into --workdir, one copy per precision (the run itself is not touched), runs
`prada eval` on each with the same questions, and prints one JSON line: per precision the seconds and
new tokens per item (from the evaluation's own generation.json), their ratio, and how many outputs are
the same text in both. It reads no accuracy: the outputs are compared with each other, not scored, so
test items can be timed without reading a result.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import host_state, machine, print_last_line  # noqa: E402

PRECISIONS = ("fp32", "bf16")
SKIPPED = ("checkpoint", "snapshots", "best", "explain", ".eval_cache", "eval.json", "predictions.jsonl")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a finished run folder")
    p.add_argument("--data", required=True, help="a JSONL file of questions (prada's data format)")
    p.add_argument("--datasets", default="", help="comma list: keep only these datasets of --data")
    p.add_argument("--limit", type=int, default=0, help="the first N questions only (0: all)")
    p.add_argument("--workdir", required=True, help="the two copies and their outputs go here")
    return p.parse_args(argv)


def copy_with_precision(run: Path, dest: Path, precision: str) -> Path:
    """The run's weights and config in `dest`, with train.precision set; nothing of its evaluations."""
    shutil.copytree(run, dest, ignore=lambda _d, names: [n for n in names if n in SKIPPED], dirs_exist_ok=True)
    config = yaml.safe_load((dest / "config.yaml").read_text())
    config["train"]["precision"] = precision
    (dest / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    from prada.evaluation.evaluate import evaluate_run

    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    keep = set(filter(None, a.datasets.split(",")))
    rows = [json.loads(line) for line in Path(a.data).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if not keep or r["dataset"] in keep][: a.limit or None]
    questions = work / "questions.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))

    host_before, t0 = host_state(), time.perf_counter()
    outputs, cost = {}, {}
    for precision in PRECISIONS:
        copy = copy_with_precision(Path(a.run), work / precision, precision)
        print(f"eval {precision}: {len(rows)} questions", file=sys.stderr)
        evaluate_run(copy, data=str(questions), out=str(copy / "bench.json"), progress=False)
        generation = json.loads((copy / "bench.generation.json").read_text())
        cost[precision] = generation
        outputs[precision] = {
            (r["dataset"], r["id"]): r["output"]
            for r in map(json.loads, (copy / "bench.predictions.jsonl").read_text().splitlines())
        }
    per_item = {
        p: {
            "seconds_per_item": cost[p]["seconds"] / len(rows),
            "new_tokens_per_item": cost[p]["new_tokens"] / len(rows),
            "rows_at_budget": cost[p].get("rows_at_budget"),
        }
        for p in PRECISIONS
    }
    same = sum(outputs["fp32"][k] == outputs["bf16"].get(k) for k in outputs["fp32"])
    result = {
        "benchmark": "eval_precision",
        "run": str(a.run),
        "data": a.data,
        "datasets": sorted(keep),
        "items": len(rows),
        "machine": machine(),
        **{f"{p}_{k}": v for p in PRECISIONS for k, v in per_item[p].items()},
        "bf16_vs_fp32_seconds_per_item": per_item["fp32"]["seconds_per_item"] / per_item["bf16"]["seconds_per_item"],
        "same_outputs": same,
        "wall_s": time.perf_counter() - t0,
        "host_before": host_before,
        "host_after": host_state(),
    }
    print_last_line(result)
    return result


if __name__ == "__main__":
    main()
