"""Every method trains and evaluates under every protocol (in-domain, leave-one-domain-out, explicit) on the tiny model."""

import json

import pytest

from prada.evaluation.evaluate import evaluate_run
from prada.experiment import experiment_from_dict, plan_folds, run_config
from prada.methods.registry import METHODS
from prada.train.loop import train

PROTOCOLS = {
    "in-domain": {},
    "leave-one-domain-out": {"folds": ["other"]},
    "explicit": {"source_domains": ["arithmetic"], "target_domains": ["other"]},
}


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_every_method_trains_and_evaluates_under_the_protocol(protocol, synth_dir, tmp_path):
    import yaml
    from tiny import TINY_YAML

    base = yaml.safe_load(TINY_YAML.read_text())
    base.pop("method"), base.pop("seed")
    base["data"].update(data_dir=str(synth_dir), max_train_per_dataset=16, max_test_per_dataset=2)
    base["data"].pop("target_domains")
    base["train"].update(max_steps=2, save_every=0)
    base["eval"].update(max_new_tokens=8)
    exp = experiment_from_dict({"methods": list(METHODS), "protocol": protocol, "base": base, **PROTOCOLS[protocol]})
    ((fold, sources, targets),) = plan_folds(exp)
    for method in METHODS:
        cfg = run_config(exp, method, 0, sources, targets)
        run = train(cfg, tmp_path / method, progress=False)
        result, _ = evaluate_run(run, progress=False)
        assert result["method"] == method
        assert {d["n"] for d in result["datasets"].values()} == {2}, method
        expected = {"synth_arithmetic", "synth_tracking"} if protocol == "explicit" else None
        assert expected is None or set(result["datasets"]) >= expected
        assert (result["target_accuracy"] is None) == (not targets), (method, result["target_accuracy"])
        if METHODS[method].train:
            log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
            assert [r["step"] for r in log] == [1, 2], method
