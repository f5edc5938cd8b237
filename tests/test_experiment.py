"""`prada run` end to end on configs/tiny-run.yaml: report files, reuse on rerun, resume of a killed run, configs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from unittest import mock

import pytest

import prada.train.checkpoint as checkpoint
import prada.train.loop as loop
from prada.errors import ConfigError, PradaError
from prada.experiment import default_config_path, load_experiment, plan_folds, plan_runs, run_experiment

REPO = Path(__file__).resolve().parents[1]
TINY_RUN = REPO / "configs" / "tiny-run.yaml"
RUN_CONFIGS = ("tiny.yaml", "study2-learning.yaml", "study2-oracle-gapcheck.yaml")  # `prada train` configs
EXPERIMENT_CONFIGS = sorted(p for p in (REPO / "configs").glob("*.yaml") if p.name not in RUN_CONFIGS)


@pytest.fixture(scope="module", autouse=True)
def _prada_cache(tmp_path_factory):
    """The tiny-random model and the synthetic suite are built once, outside the user's cache."""
    if "PRADA_CACHE" not in os.environ:
        os.environ["PRADA_CACHE"] = str(tmp_path_factory.mktemp("prada-cache"))


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """tiny-run with its prada run killed right after its first checkpoint, then `prada run` to the end."""
    out = tmp_path_factory.mktemp("runs")
    # smaller than tiny-run.yaml where it does not matter: fewer test questions and tokens, fewer resamples
    overrides = [
        f"out_dir={out}",
        "train.max_steps=8",
        "data.max_test_per_dataset=4",
        "eval.max_new_tokens=12",
        "explain_per_dataset=8",
        "bootstrap=200",
    ]
    exp = load_experiment(TINY_RUN, overrides)
    killed = next(r for r in plan_runs(exp, out / exp.name) if r.method == "prada")
    real_save = checkpoint.save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise _Killed

    with mock.patch.object(checkpoint, "save_checkpoint", save_then_die), pytest.raises(_Killed):
        loop.train(killed.config, killed.dir, progress=False)
    assert (killed.dir / "checkpoint").exists() and not (killed.dir / "train_done.json").exists()

    lines: list[str] = []
    root = run_experiment(TINY_RUN, overrides, progress=False, log=lines.append)
    return root, lines, killed, overrides


def test_run_writes_results_report_and_plots(experiment):
    root, lines, _, _ = experiment
    assert (root / "report.md").exists()
    results = json.loads((root / "results.json").read_text())
    assert {r["method"] for r in results["runs"]} == {"zero-shot", "prada"}
    for r in results["runs"]:
        assert r["fold"] == "other" and r["target_domains"] == ["other"]
        assert r["eval"]["target_accuracy"] is not None
        lo, hi = r["ci"]["mean_accuracy"]
        assert lo <= r["eval"]["mean_accuracy"] <= hi
    assert len(list(root.glob("*.png"))) >= 3
    report = (root / "report.md").read_text()
    assert "Source vs target" in report and "explain.md" in report and "training_curves.png" in report
    explain = root / "runs" / "prada__other__seed0" / "explain" / "explain.json"
    assert explain.exists()  # explained the trained run ...
    ex = json.loads(explain.read_text())
    for side in ("trained", "untrained"):
        assert 0.0 <= ex[side]["probe"]["accuracy"] <= 1.0
        assert ex[side]["pad"] and all(-2.0 <= v <= 2.0 for v in ex[side]["pad"].values())
    assert ex["samples"]["other"][0]["student"] is not None  # rationales from the run's predictions.jsonl
    assert not (root / "runs" / "zero-shot__other__seed0" / "explain").exists()  # ... and only that
    assert any(line.startswith("[2/2] prada fold=other seed=0") for line in lines)


def test_interrupted_run_resumes(experiment):
    _, lines, killed, _ = experiment
    assert any("prada" in line and "resuming" in line for line in lines)
    steps = [json.loads(line)["step"] for line in (killed.dir / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, killed.config.train.max_steps + 1))
    assert (killed.dir / "train_done.json").exists()


def test_rerun_reuses_finished_runs(experiment):
    root, _, _, overrides = experiment
    watched = [
        p
        for p in (root / "runs").rglob("*")
        if p.name in ("train_done.json", "eval.json", "explain.json", "model.safetensors")
    ]
    before = {p: p.stat().st_mtime_ns for p in watched}
    lines: list[str] = []
    with mock.patch.object(loop, "train", side_effect=AssertionError("retrained")):
        run_experiment(TINY_RUN, overrides, progress=False, log=lines.append)
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    assert sum("reused" in line for line in lines) == 2


def test_changed_config_is_not_silently_reused(experiment):
    _, _, _, overrides = experiment
    with pytest.raises(PradaError, match="different config"):
        run_experiment(TINY_RUN, [*overrides, "train.max_steps=13"], progress=False, log=None)


def test_a_run_saved_before_a_switch_existed_matches_a_plan_that_leaves_it_at_its_default(tmp_path):
    """A study resumed after prada gained a config key: the old run folders' config.yaml lack the key."""
    import yaml

    from prada.config import config_to_dict
    from prada.experiment import check_not_stale

    run = next(r for r in plan_runs(load_experiment(TINY_RUN), tmp_path) if r.method == "prada")
    saved = config_to_dict(run.config)
    del saved["train"]["fused_adamw"]  # as written by a prada without that switch
    run.dir.mkdir(parents=True)
    (run.dir / "config.yaml").write_text(yaml.safe_dump(saved))
    check_not_stale(run)  # the planned value is the default: the same config

    planned_off = next(
        r for r in plan_runs(load_experiment(TINY_RUN, ["train.fused_adamw=off"]), tmp_path) if r.method == "prada"
    )
    with pytest.raises(PradaError, match=r"different config \(train.fused_adamw: 'auto' saved, 'off' planned\)"):
        check_not_stale(planned_off)


def test_embedded_default_loads_and_plans(tmp_path):
    exp = load_experiment(None)
    assert default_config_path().exists() and exp.name == "default"
    runs = plan_runs(exp, tmp_path)
    assert [(r.method, r.fold) for r in runs] == [
        ("prior", "other"),
        ("zero-shot", "other"),
        ("ft-cot", "other"),
        ("prada", "other"),
    ]
    assert runs[1].config.student.model == "smollm2-135m"
    assert runs[3].config.data.target_domains == ["other"]
    assert set(runs[3].config.data.source_domains) == {"arithmetic", "symbolic", "commonsense"}


@pytest.mark.parametrize("path", EXPERIMENT_CONFIGS, ids=lambda p: p.name)
def test_experiment_configs_load_and_plan(path, tmp_path):
    exp = load_experiment(path)
    runs = plan_runs(exp, tmp_path)
    assert runs and len({r.dir for r in runs}) == len(runs)
    for r in runs:
        assert r.dir.name == f"{r.method}__{r.fold}__seed{r.seed}"


def test_protocols_and_overrides(tmp_path):
    exp = load_experiment(
        TINY_RUN, ["folds=", "seeds=[0,1]", "train.max_steps=3", "method_overrides.prada.adversary.lambda_max=0.3"]
    )
    folds = plan_folds(exp)
    assert [f[0] for f in folds] == ["arithmetic", "other", "symbolic"]  # every domain of the selected data
    runs = plan_runs(exp, tmp_path)
    assert len(runs) == 3 * 2 * 2 - 3  # zero-shot trains nothing: one run per fold, paired with every seed
    assert [r.seed for r in runs if r.method == "zero-shot"] == [0, 0, 0]
    prada = next(r for r in runs if r.method == "prada")
    assert prada.config.adversary.lambda_max == 0.3 and prada.config.train.max_steps == 3
    assert next(r for r in runs if r.method == "zero-shot").config.adversary.lambda_max == 0.1
    ind = load_experiment(TINY_RUN, ["protocol=in-domain", "folds="])
    (run,) = [r for r in plan_runs(ind, tmp_path) if r.method == "prada"]
    assert run.fold == "in-domain" and run.config.data.target_domains == []
    exp = load_experiment(
        TINY_RUN, ["protocol=explicit", "folds=", "source_domains=[arithmetic]", "target_domains=[symbolic]"]
    )
    (run,) = [r for r in plan_runs(exp, tmp_path) if r.method == "prada"]
    assert run.fold == "symbolic" and run.config.data.source_domains == ["arithmetic"]


@pytest.mark.parametrize(
    "override, key",
    [
        (["protocol=sideways"], "protocol"),
        (["methods=[prada,nope]"], "methods"),
        (["base.train.bogus=1"], "base.train.bogus"),
        (["train.batch_size=0"], "base.train.batch_size"),
        (["method_overrides.prada.adversary.lambda_max=high"], "method_overrides.prada.adversary.lambda_max"),
        (["method_overrides.dann.adversary.lambda_max=0.2"], "method_overrides.dann"),
        (["base.method=prada"], "base.method"),
        (["seeds=[]"], "seeds"),
        (["folds=[nowhere]"], "folds"),
        (["protocol=explicit", "folds="], "target_domains"),
        (["frobnicate=1"], "frobnicate"),
    ],
)
def test_validation_names_the_key(override, key, tmp_path):
    with pytest.raises(ConfigError, match=f"^{key}"):
        plan_runs(load_experiment(TINY_RUN, override), tmp_path)
