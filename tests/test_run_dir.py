"""run_dir.py owns the run folder's names: the weight paths saving writes are the ones eval's cache key covers."""

import os

import pytest
from tiny import tiny_config

from prada.run_dir import CONFIG, DONE, STUDENT, TRAIN_LOG, WEIGHTS, weight_files, weights_fingerprint


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("name", WEIGHTS)
def test_a_change_under_any_weight_path_changes_the_fingerprint(tmp_path, name):
    for other in WEIGHTS:  # every part present, as after a prada run with LoRA
        _touch(tmp_path / other if other.endswith(".safetensors") else tmp_path / other / "a.safetensors")
    _touch(tmp_path / "notes.txt")
    before = weights_fingerprint(tmp_path)
    assert len(weight_files(tmp_path)) == len(WEIGHTS)
    changed = tmp_path / name if name.endswith(".safetensors") else tmp_path / name / "a.safetensors"
    _touch(changed, b"retrained")
    after = weights_fingerprint(tmp_path)
    assert after != before
    _touch(tmp_path / "notes.txt", b"other notes")  # files outside the weight paths are not weights
    os.utime(tmp_path / "notes.txt", ns=(0, 0))
    assert weights_fingerprint(tmp_path) == after


def test_a_trained_run_holds_only_files_run_dir_names(synth_dir, tmp_path):
    from prada.train.loop import train

    cfg = tiny_config(synth_dir, "method=prada", "train.backbone=lora", "train.max_steps=2")
    run = train(cfg, tmp_path / "run", progress=False)
    names = {p.name for p in run.iterdir()}
    assert names <= {CONFIG, TRAIN_LOG, DONE, STUDENT, *WEIGHTS}, names
    assert {"lora", "prompt", "domain_head.safetensors", STUDENT} <= names
    assert all(p.relative_to(run).parts[0] in WEIGHTS for p in weight_files(run))


@pytest.mark.parametrize(
    "vendor, family, flags, bf16",
    [
        ("GenuineIntel", 6, "fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile", True),  # AMX: measured faster
        ("GenuineIntel", 6, "fpu avx2 avx512f avx512_bf16 avx512_fp16", False),  # bf16, no AMX: measured slower
        ("AuthenticAMD", 26, "fpu avx2 avx512f avx512_bf16", False),  # Zen 5: 2x faster, prada's loss not equal
        ("AuthenticAMD", 25, "fpu avx2 avx512f avx512_bf16", False),  # Zen 4: unmeasured
        ("AuthenticAMD", 26, "fpu avx2 fma", False),
        ("GenuineIntel", 6, "fpu avx2 fma", False),
    ],
)
def test_auto_precision_picks_bf16_only_on_a_cpu_with_amx(vendor, family, flags, bf16):
    from prada.run_dir import bf16_supported

    first = f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nflags\t\t: {flags}\n"
    second = "processor\t: 1\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nflags\t\t: amx_bf16\n"
    assert bf16_supported(f"{first}\n{second}") is bf16  # the first CPU's lines decide


def test_one_process_can_start_runs_at_two_precisions_one_after_the_other(monkeypatch):
    """train() called twice as a library (benchmarks/loss_curves.py: fp32, then bf16): accelerate keeps one
    state per process and refused the second precision; make_accelerator lets it change, and resets nothing
    when the precision is the same."""
    from accelerate.state import AcceleratorState

    from prada.run_dir import make_accelerator

    resets = []
    reset = AcceleratorState._reset_state
    monkeypatch.setattr(AcceleratorState, "_reset_state", lambda **kw: resets.append(kw) or reset(**kw))
    assert make_accelerator("fp32").mixed_precision == "no"
    resets.clear()  # whatever an earlier test of this process left
    assert make_accelerator("bf16").mixed_precision == "bf16"
    assert make_accelerator("bf16").mixed_precision == "bf16"
    assert make_accelerator("fp32").mixed_precision == "no"
    assert resets == [{"reset_partial_state": False}] * 2  # bf16 after fp32, fp32 after bf16: the process group stays
