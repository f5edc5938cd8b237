"""Following training live: accelerate trackers get every logged row, grad norm in the log, the start banner, --quiet."""

import json
import os
import subprocess
import sys

import pytest
from tiny import tiny_config

from prada.errors import ConfigError
from prada.train.loop import train


def test_tensorboard_gets_every_logged_row(synth_dir, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(synth_dir, "train.max_steps=3", "train.save_every=0", "train.log_with=[tensorboard]")
    run = train(cfg, tmp_path / "r", progress=False)
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    events = list((run / "tracking").rglob("events.out.tfevents.*"))
    assert events, list((run / "tracking").rglob("*"))
    scalars = {}
    for path in events:
        acc = EventAccumulator(str(path.parent))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    for key in ("lm_loss", "domain_loss", "domain_acc", "lr", "grad_norm"):
        assert [s for s, _ in scalars[key]] == [1, 2, 3], key
        assert [v for _, v in scalars[key]] == pytest.approx([r[key] for r in log], rel=1e-5), key
    assert all(r["grad_norm"] > 0 for r in log)


def test_grad_norm_is_measured_without_clipping(synth_dir, tmp_path):
    cfg = tiny_config(synth_dir, "train.max_steps=2", "train.max_grad_norm=0", "method=ft-cot")
    log = [
        json.loads(x) for x in (train(cfg, tmp_path / "r", progress=False) / "train_log.jsonl").read_text().splitlines()
    ]
    assert all(r["grad_norm"] > 0 for r in log)


def test_unknown_tracker_is_a_config_error(synth_dir):
    with pytest.raises(ConfigError, match="train.log_with"):
        tiny_config(synth_dir, "train.log_with=[tensorbored]")


def _train_cli(synth_dir, out, *extra, env=None):
    cmd = [sys.executable, "-m", "prada", "train", "--config", "configs/tiny.yaml", f"data.data_dir={synth_dir}"]
    cmd += ["train.max_steps=2", "--out", str(out), *extra]
    clean = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}  # the caller's setting, not the suite's
    r = subprocess.run(cmd, capture_output=True, text=True, env={**clean, **(env or {})})
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stderr


def test_banner_and_bars_and_quiet(synth_dir, tmp_path):
    shown = _train_cli(synth_dir, tmp_path / "a")
    assert "prada train: method prada, student tiny-random" in shown
    assert "1 process x batch 8 = global batch 8; device cpu, precision fp32" in shown
    assert "train prada" in shown  # the progress bar
    for quiet in (
        _train_cli(synth_dir, tmp_path / "b", "--quiet"),
        _train_cli(synth_dir, tmp_path / "c", env={"TQDM_DISABLE": "1"}),
    ):
        assert "global batch" not in quiet and "train prada" not in quiet
