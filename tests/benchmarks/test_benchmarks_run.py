"""The benchmark scripts keep their contract: they run, and the last stdout line is one JSON object with the issue's keys."""

import json
import subprocess
import sys

from tiny import REPO


def _last_json(args: list[str]) -> dict:
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_train_throughput_quick(tmp_path):
    out = _last_json(
        ["benchmarks/train_throughput.py", "--quick", "--steps", "2", "--rounds", "2", "--workdir", str(tmp_path)]
    )
    for key in (
        "model",
        "dtype",
        "prada_tokens_per_s",
        "hf_trainer_tokens_per_s",
        "hf_trainer_grouped_tokens_per_s",
        "prada_vs_hf_trainer",
        "prada_vs_hf_trainer_grouped",
        "prada_vs_ftcot_step_time",
        "peak_rss_gib",
        "flop_fraction_of_peak",
    ):
        assert out[key] is not None, key
    assert out["rounds"] == 2 and out["prada_tokens_per_s"] > 0 and 0 < out["flop_fraction_of_peak"] < 1
    assert out["prada_target_token_fraction"] > 0  # the adversary's target batches, relative to the source's
    assert len(list(tmp_path.glob("worker-prada-r*.log"))) == 2  # both rounds ran, each in its own process


def test_eval_throughput_quick(tmp_path):
    out = _last_json(
        [
            "benchmarks/eval_throughput.py",
            "--quick",
            "--model",
            "tiny-random",
            "--dtype",
            "fp32",
            "--prompts",
            "4",
            "--max-new-tokens",
            "8",
            "--workdir",
            str(tmp_path),
        ]
    )
    for key in (
        "model",
        "prada_eval_tokens_per_s",
        "naive_tokens_per_s",
        "eval_vs_naive",
        "same_predictions",
        "batched_generate_tokens_per_s",
        "eval_vs_batched_generate",
    ):
        assert out[key] is not None, key
    assert out["same_predictions"] is True  # fp32: batched greedy decoding must give the per-example tokens
