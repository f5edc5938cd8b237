"""configs/tiny.yaml through the CLI: train then eval for every method, checking the file set and log counts."""

import json
import subprocess
import sys

import pytest

from prada.methods.registry import METHODS

# First two logged losses of tiny.yaml with method=prada (seed 0, CPU fp32), pinned to catch silent
# changes to data, format, initialisation or loss. Update deliberately, with the reason in the commit.
# Stop 13: source batches stratified by domain (train.mix_domains) and run as length groups
# (train.split_by_length, which changes only the domain head's dropout draws, not the CoT loss); with
# mix_domains=false the old pins [5.569307804107666, 5.256133079528809] / [2.170381546020508,
# 2.08320689201355] still hold (checked).
PINNED_LM_LOSS = [5.56399393081665, 5.178286075592041]
PINNED_DOMAIN_LOSS = [2.1691911220550537, 2.1066365242004395]


def test_first_losses_are_pinned(synth_dir, tmp_path):
    from prada.config import load_config
    from prada.train.loop import train

    run = train(
        load_config("configs/tiny.yaml", [f"data.data_dir={synth_dir}", "train.max_steps=2"]),
        tmp_path / "r",
        progress=False,
    )
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["lm_loss"] for r in log] == pytest.approx(PINNED_LM_LOSS, abs=1e-4)
    assert [r["domain_loss"] for r in log] == pytest.approx(PINNED_DOMAIN_LOSS, abs=1e-4)


@pytest.mark.parametrize("method", list(METHODS))
def test_train_then_eval(method, synth_dir, tmp_path):
    run = tmp_path / method
    cmd = [sys.executable, "-m", "prada"]
    r = subprocess.run(
        [
            *cmd,
            "train",
            "--config",
            "configs/tiny.yaml",
            f"method={method}",
            f"data.data_dir={synth_dir}",
            "train.max_steps=6",
            "--out",
            str(run),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([*cmd, "eval", "--run", str(run)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads((run / "eval.json").read_text())
    assert set(result) >= {"method", "datasets", "domains", "mean_accuracy", "source_accuracy", "target_accuracy"}
    assert result["method"] == method
    assert set(result["datasets"]) == {"synth_arithmetic", "synth_coin_flip", "synth_tracking"}
    assert all(d["n"] == 8 and 0 <= d["accuracy"] <= 100 for d in result["datasets"].values())
    assert result["target_accuracy"] == result["domains"]["other"]
    preds = (run / "predictions.jsonl").read_text().splitlines()
    assert len(preds) == 24
    assert (run / "config.yaml").exists()
    if METHODS[method].train:
        log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in log] == list(range(1, 7))
        spec_fields = {"step", "lm_loss", "domain_loss", "lambda", "domain_acc", "lr", "tokens_per_s", "grad_norm"}
        extra = set()
        if METHODS[method].adversary:  # the DANN diagnostics beside their chance levels
            extra = {"domain_ce_source", "domain_ce_target", "domain_acc_source", "domain_acc_target"}
            extra |= {"domain_acc_majority", "domain_ce_chance", "head_grad_norm"}  # the head is clipped apart
        if METHODS[method].target_lm:
            extra |= {"target_lm_loss"}
        assert set(log[0]) == spec_fields | extra


def test_eval_on_a_custom_file(synth_dir, tmp_path):
    from prada.config import load_config
    from prada.train.loop import train

    custom = tmp_path / "custom.jsonl"
    custom.write_text(
        '{"question": "What is 1 + 1?", "answer": "2", "answer_type": "number"}\n'
        '{"question": "Is the sky green?", "answer": "no", "answer_type": "yes_no"}\n'
    )
    run = train(
        load_config("configs/tiny.yaml", [f"data.data_dir={synth_dir}", "method=ft-cot", "train.max_steps=2"]),
        tmp_path / "run",
        progress=False,
    )
    from prada.evaluation.evaluate import evaluate_run

    result, path = evaluate_run(run, data=str(custom), out=str(tmp_path / "custom_eval.json"), progress=False)
    assert result["datasets"]["custom"]["n"] == 2 and path.exists()
