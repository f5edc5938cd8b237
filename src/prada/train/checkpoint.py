"""Resumable checkpoints: trainable weights, optimizer, RNG and step, written atomically as one folder.

Weights go to safetensors; optimizer and RNG state to a torch file read back with weights_only=True.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from prada.errors import PradaError

CHECKPOINT = "checkpoint"


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
    """Write run_dir/checkpoint atomically: build .checkpoint.tmp, then swap it in."""
    tmp, final, old = run_dir / ".checkpoint.tmp", run_dir / CHECKPOINT, run_dir / ".checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    trainable = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trainable, str(tmp / "trainable.safetensors"))
    state = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save(state, tmp / "state.pt")
    (tmp / "step.json").write_text(json.dumps({"step": step}))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (a kill mid-swap leaves the previous one as .checkpoint.old)."""
    for name in (CHECKPOINT, ".checkpoint.old"):
        folder = run_dir / name
        if (folder / "step.json").exists():
            return folder
    return None


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore weights, optimizer and RNG in place; return the step to continue from."""
    weights = load_file(str(folder / "trainable.safetensors"))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    try:
        state = torch.load(folder / "state.pt", weights_only=True)
    except Exception as e:
        raise PradaError(
            f"{folder / 'state.pt'}: unreadable checkpoint ({type(e).__name__}); delete {folder} to restart the run"
        ) from None
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return json.loads((folder / "step.json").read_text())["step"]
