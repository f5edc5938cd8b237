"""eval.refill_after reaches the decoder that `prada eval` runs (the switch is tested both ways in test_generate.py)."""

from tiny import tiny_config

import prada.evaluation.evaluate as evaluate


def test_prada_eval_decodes_with_the_configured_refill_after(synth_dir, tmp_path, monkeypatch):
    from prada.train.loop import train

    seen = []
    real = evaluate.generate_texts

    def recording(*args, **kwargs):
        seen.append(kwargs["refill_after"])
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate, "generate_texts", recording)
    cfg = tiny_config(synth_dir, "method=ft-cot", "train.max_steps=2", "eval.refill_after=3")
    result, _ = evaluate.evaluate_run(train(cfg, tmp_path / "r", progress=False), progress=False)
    assert seen == [3] and result["datasets"]
