"""The benchmark scripts keep their contract: they run, and the last stdout line is one JSON object with the issue's keys."""

import json
import subprocess
import sys

import pytest
import torch
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
    assert set(out["host_before"]) == {"load_average", "cpu_flags"} and len(out["host_after"]["load_average"]) == 3


def test_train_throughput_measures_a_config_override_beside_its_method(tmp_path):
    """`METHOD@KEY=VALUE` trains the method with that override in its own worker and reports the ratio."""
    variant = "ft-cot@train.freeze_embeddings=true"
    out = _last_json(
        [
            "benchmarks/train_throughput.py",
            "--quick",
            "--steps",
            "2",
            "--contenders",
            f"ft-cot,{variant}",
            "--workdir",
            str(tmp_path),
        ]
    )
    v = out["variants"][variant]
    assert v["vs_base_tokens_per_s"] == v["tokens_per_s"] / out["ftcot_tokens_per_s"] > 0
    (run,) = tmp_path.glob("run-ft-cot-train.freeze_embeddings=true-r0")
    assert "freeze_embeddings: true" in (run / "config.yaml").read_text()
    assert "freeze_embeddings: false" in next(tmp_path.glob("run-ft-cot-r0")).joinpath("config.yaml").read_text()


@pytest.mark.parametrize(("setting", "kept"), [("on", True), ("off", False)])
def test_train_throughput_applies_the_allocator_switch_in_every_contenders_process(tmp_path, setting, kept):
    """`prada train` runs under PRADA_KEEP_FREED_MEMORY; the benchmark's workers (prada's loop and the Trainer)
    apply the same switch, each in its own process, and the record says what each got."""
    out = _last_json(
        [
            "benchmarks/train_throughput.py",
            "--quick",
            "--steps",
            "1",
            "--contenders",
            "ft-cot,hf-trainer-grouped",
            "--keep-freed-memory",
            setting,
            "--workdir",
            str(tmp_path),
        ]
    )
    assert out["keep_freed_memory"] == {"ft-cot": kept, "hf-trainer-grouped": kept}


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
    assert out["weight_first_linears"] is True  # as `prada eval` decodes on a CPU in fp32
    assert out["keep_freed_memory"] is not torch.cuda.is_available()  # auto, as `prada eval` sets the allocator


def test_eval_throughput_without_the_per_example_baseline_checks_prada_against_batched_generate(tmp_path):
    args = ["benchmarks/eval_throughput.py", "--model", "tiny-random", "--dtype", "fp32", "--prompts", "6"]
    out = _last_json(
        [*args, "--batch", "2", "--max-new-tokens", "6", "--no-naive", "--workdir", str(tmp_path)]
        + ["--keep-freed-memory", "off"]
    )
    assert out["keep_freed_memory"] is False
    assert out["naive_tokens_per_s"] is None and out["batched_same_predictions_as_naive"] is None
    assert out["same_predictions_reference"] == "batched" and out["same_predictions"] is True
    assert out["eval_vs_batched_generate"] > 0 and out["prompts"] == 6


def test_eval_throughput_reads_questions_from_a_file_and_keeps_the_named_datasets(tmp_path):
    """--questions: a trained student's real dev questions instead of synthetic ones; --datasets filters them."""
    rows = [
        {"question": f"Is {n} even or odd?", "answer": "yes", "answer_type": "yes_no", "dataset": ds, "id": f"{ds}-{n}"}
        for ds in ("coin_flip", "addsub")
        for n in range(5 if ds == "coin_flip" else 3)
    ]
    questions = tmp_path / "dev.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["benchmarks/eval_throughput.py", "--model", "tiny-random", "--dtype", "fp32", "--no-naive"]
    args += ["--batch", "2", "--max-new-tokens", "5", "--questions", str(questions)]
    out = _last_json([*args, "--datasets", "coin_flip", "--workdir", str(tmp_path)])
    assert out["prompts"] == 5 and out["questions"] == {"file": str(questions), "datasets": "coin_flip"}
    assert out["same_predictions"] is True
    # every row of a batch runs until the batch's longest row ends: at least one step per generated token
    assert out["generated_tokens"] <= out["batched_generate_row_steps"] <= 5 * 5
    assert _last_json([*args, "--workdir", str(tmp_path)])["prompts"] == 8  # all datasets of the file


def test_eval_throughput_refuses_datasets_without_questions():
    refused = subprocess.run(
        [sys.executable, "benchmarks/eval_throughput.py", "--datasets", "addsub"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "--datasets needs --questions" in refused.stderr


@pytest.mark.parametrize(
    ("dtype", "setting", "expected"), [("fp32", "auto", True), ("fp32", "off", False), ("bf16", "auto", False)]
)
def test_eval_throughput_decodes_with_the_switch_prada_eval_resolves(monkeypatch, dtype, setting, expected):
    """The `prada` contender used to decode without weight-first linears where `prada eval` decodes with them."""
    import argparse

    import prada.evaluation.generate as generate
    from prada.config import RunConfig
    from prada.model_aliases import resolve_model
    from prada.run_dir import resolve_switches
    from prada.train.backbones import load_causal_lm, load_tokenizer
    from prada.train.student import Student

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import eval_throughput

    cfg = RunConfig()
    cfg.train.precision, cfg.eval.weight_first_linears = dtype, setting
    assert resolve_switches(cfg, "cpu")["weight_first_linears"] is expected  # what `prada eval` would run
    calls = []
    real = generate._weight_first
    monkeypatch.setattr(generate, "_weight_first", lambda module, x: calls.append(1) or real(module, x))
    path = resolve_model("tiny-random")
    tok = load_tokenizer(path)
    a = argparse.Namespace(dtype=dtype, weight_first=setting, max_new_tokens=4, batch=2, refill_after=1)
    prompts = [tok("What is 2 + 3? ###")["input_ids"], tok("Hi ###")["input_ids"]]
    eval_throughput.prada_generate(Student(load_causal_lm(path).eval()), prompts, tok, a, torch.device("cpu"))
    assert (len(calls) > 0) is expected


def _ft_cot_on_tiny(script: str, synth_dir) -> list[str]:
    """A run-config benchmark's arguments for ft-cot on configs/tiny.yaml and the session's synthetic data."""
    return [script, "--config", "configs/tiny.yaml", "--set", f"data.data_dir={synth_dir}", "--method", "ft-cot"]


def test_loss_curves_trains_both_runs_alike_but_for_the_switch(tmp_path, synth_dir):
    """Both runs log held-out losses at the same steps; the switched run's config differs in that key only."""
    out = _last_json(
        [
            *_ft_cot_on_tiny("benchmarks/loss_curves.py", synth_dir),
            "--switch",
            "train.freeze_embeddings=true",
            "--steps",
            "4",
            "--eval-every",
            "2",
            "--workdir",
            str(tmp_path),
        ]
    )
    base, switched = (out["curves"][k]["heldout_lm_loss_source"] for k in ("base", "train.freeze_embeddings=true"))
    assert list(base) == list(switched) == ["2", "4"]  # JSON keys
    assert out["heldout_loss_ratio"] == switched["4"] / base["4"] and base["4"] != switched["4"]
    configs = [(tmp_path / f / "config.yaml").read_text().splitlines() for f in ("base", "switched")]
    assert [(a, b) for a, b in zip(*configs) if a != b] == [("  freeze_embeddings: false", "  freeze_embeddings: true")]
    assert (tmp_path / "loss_curves.png").stat().st_size > 1000
    assert out["keep_freed_memory"] is not torch.cuda.is_available()  # the allocator `prada train` trains under


def test_loss_curves_over_several_seeds_pairs_each_seed_and_takes_the_geometric_mean_of_the_ratios(tmp_path, synth_dir):
    out = _last_json(
        [
            *_ft_cot_on_tiny("benchmarks/loss_curves.py", synth_dir),
            *("--switch", "train.lr=3e-3", "--steps", "2", "--eval-every", "2", "--seeds", "0,1"),
            *("--workdir", str(tmp_path)),
        ]
    )
    assert [row["seed"] for row in out["per_seed"]] == [0, 1]
    for row in out["per_seed"]:
        curves = out["curves_per_seed"][str(row["seed"])]
        assert (row["base"], row["switched"]) == (curves["base"]["2"], curves["train.lr=3e-3"]["2"])
        assert row["ratio"] == row["switched"] / row["base"]
        assert "seed: " + str(row["seed"]) in (tmp_path / f"seed{row['seed']}" / "base" / "config.yaml").read_text()
    assert out["per_seed"][0]["base"] != out["per_seed"][1]["base"]  # the seeds trained differently
    ratios = [row["ratio"] for row in out["per_seed"]]
    assert out["heldout_loss_ratio_geomean"] == pytest.approx((ratios[0] * ratios[1]) ** 0.5)
    assert out["base_last_heldout_loss"] == pytest.approx((out["per_seed"][0]["base"] + out["per_seed"][1]["base"]) / 2)


def test_parallel_runs_times_one_process_then_k_side_by_side(tmp_path, synth_dir):
    """The lone run gets every core, the K side-by-side runs a share each; the ratio is their summed speed over it."""
    out = _last_json(
        [
            *_ft_cot_on_tiny("benchmarks/parallel_runs.py", synth_dir),
            "--steps",
            "4",
            "--warmup",
            "1",
            "--processes",
            "2",
            "--cores",
            "2",
            "--workdir",
            str(tmp_path),
        ]
    )
    side = out["side_by_side"]["runs"]
    assert set(side) == {"side-0", "side-1"} and out["side_by_side"]["threads_each"] == 1
    assert out["aggregate_ratio"] == sum(r["tokens_per_s"] for r in side.values()) / out["lone"]["tokens_per_s"] > 0
    assert "threads: 2" in (tmp_path / "lone" / "config.yaml").read_text()
    for name in side:  # the same batches: every run logs the same steps and the same first loss
        assert "threads: 1" in (tmp_path / name / "config.yaml").read_text()
    losses = {
        n: json.loads((tmp_path / n / "train_log.jsonl").read_text().splitlines()[0])["lm_loss"]
        for n in ("lone", *side)
    }
    assert len({round(v, 4) for v in losses.values()}) == 1, losses


def test_eval_precision_times_the_run_under_each_precision_on_copies(tmp_path, counting_model, counting_data):
    """Each copy differs from the run in train.precision alone; the fp32 copy answers as `prada eval` of the
    run itself does; the run folder gets nothing new."""
    from tiny import tiny_config

    from prada.evaluation.evaluate import evaluate_run
    from prada.train.loop import train

    cfg = tiny_config(
        counting_data,
        "method=ft-cot",
        f"student.model={counting_model}",
        "data.benchmark=none",
        "data.datasets=[]",
        "data.target_domains=[other]",
        "train.max_steps=2",
        "train.save_every=0",
        "train.precision=fp32",
        "eval.max_new_tokens=32",
    )
    run = train(cfg, tmp_path / "run", progress=False)
    questions = counting_data / "counting" / "test.jsonl"
    evaluate_run(run, data=str(questions), out=str(tmp_path / "own.json"), progress=False)
    before = sorted(p.name for p in run.iterdir())
    out = _last_json(
        ["benchmarks/eval_precision.py", "--run", str(run), "--data", str(questions), "--limit", "5"]
        + ["--workdir", str(tmp_path / "work")]
    )
    assert sorted(p.name for p in run.iterdir()) == before
    assert out["items"] == 5 and out["fp32_seconds_per_item"] > 0 and out["bf16_seconds_per_item"] > 0
    assert out["fp32_new_tokens_per_item"] > 4  # the counting student writes long, prompt-dependent answers
    for precision in ("fp32", "bf16"):
        lines = (tmp_path / "work" / precision / "config.yaml").read_text().splitlines()
        diff = [(a, b) for a, b in zip((run / "config.yaml").read_text().splitlines(), lines) if a != b]
        assert diff == ([] if precision == "fp32" else [("  precision: fp32", "  precision: bf16")])
    own = {r["id"]: r["output"] for r in map(json.loads, (tmp_path / "own.predictions.jsonl").read_text().splitlines())}
    copy = (tmp_path / "work" / "fp32" / "bench.predictions.jsonl").read_text().splitlines()
    assert [json.loads(r)["output"] for r in copy] == [own[json.loads(r)["id"]] for r in copy]
    assert 0 <= out["same_outputs"] <= 5


def test_table_prints_each_kind_of_result_line_from_the_committed_results():
    """benchmarks/table.py turns a results file into the README's tables: every train, variant, eval and
    eval-precision line of the committed Zen 5 file lands in its table, numbered by its line."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from table import main

    text = main([str(REPO / "benchmarks" / "results" / "issue23-zen5.jsonl")])
    assert "| 4 | folder:data/study2/synth2real, 8 steps, target batch 4, fp32 | 205.2 | 159.5 | 175.0 |" in text
    assert "| 4 | `prada@train.precision=bf16` | 324.0 | 2.03x |" in text
    on = "folder:data/study2/synth2real, 8 steps, 2 rounds, target batch 4, fp32, allocator switch on"
    assert f"| 14 | {on} | 217.1 | 168.5 | 218.7 | — | 0.99x | 0.77x | 1.50 |" in text
    assert "| 3 | 32 x 128, 32, bf16 | 400.9 | 337.5 |" in text
    assert "| 7 | 32 x 128, 32, fp32, weight-first on | 159.2 | 143.1 | 25.7 | 1.11x | yes |" in text
    assert "| 5 | `ft-cot-tlm__real__seed0`, 209 of dev-real.jsonl | 0.406 | 0.198 | 2.06x |" in text
    trained = "209 x 112, 32, fp32, weight-first on"
    assert f"| 9 | {trained}; dev-real.jsonl, ft-cot__real__seed1 | 141.7 | 156.7 | — | 0.90x |" in text
    assert (
        f"| 10 | {trained}, refill after 8; dev-real.jsonl, ft-cot__real__seed1 | 188.5 | 172.4 | — | 1.09x |" in text
    )


@pytest.mark.parametrize(("seeds", "why"), [("0,x", "integers separated by commas"), ("1,1", "a seed appears twice")])
def test_loss_curves_refuses_a_bad_seed_list_before_training(tmp_path, seeds, why):
    args = ["benchmarks/loss_curves.py", "--switch", "train.lr=1e-3", "--workdir", str(tmp_path), "--seeds", seeds]
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 2 and why in r.stderr and not any(tmp_path.iterdir())
