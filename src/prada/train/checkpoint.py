"""Resumable checkpoints: trainable weights, optimizer, RNG and step, written atomically as one folder.

Weights go to safetensors; optimizer and RNG state to a torch file read back with weights_only=True.
step.json holds the step and the sha256 of its files: a damaged checkpoint is refused, never resumed.
Under FSDP / DeepSpeed (or train.checkpoint_format=accelerate) accelerate's save_state / load_state
write the folder's contents instead: `optimizer.state_dict()` does not hold sharded state.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from prada.errors import PradaError
from prada.io import sha256_file
from prada.run_dir import CHECKPOINT, CHECKPOINT_OLD, CHECKPOINT_TMP, CONFIG

CHECKPOINT_DIRS = (CHECKPOINT, CHECKPOINT_OLD, CHECKPOINT_TMP)  # what a finished run no longer needs
RUN_CONFIG = CONFIG  # copied into each checkpoint: a resume refuses an edited config
REQUIRED = {"prada": ("trainable.safetensors", "state.pt")}  # files a checkpoint of that format must list


def _digest(step: int, files: dict[str, str]) -> str:
    """One hash over the step and the files' hashes, so an edited step.json is caught as well."""
    return hashlib.sha256(json.dumps([step, sorted(files.items())]).encode()).hexdigest()


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
    """Write run_dir/checkpoint atomically: build .checkpoint.tmp, then swap it in."""
    tmp = run_dir / CHECKPOINT_TMP
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    trainable = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trainable, str(tmp / "trainable.safetensors"))
    state = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save(state, tmp / "state.pt")
    _commit(run_dir, step)


def _commit(run_dir: Path, step: int) -> None:
    """Seal run_dir/.checkpoint.tmp (step.json with every file's sha256, fsync) and swap it in for the checkpoint."""
    tmp, final, old = run_dir / CHECKPOINT_TMP, run_dir / CHECKPOINT, run_dir / CHECKPOINT_OLD
    if (run_dir / RUN_CONFIG).is_file():  # the config it was trained with: a resume refuses an edited one
        shutil.copyfile(run_dir / RUN_CONFIG, tmp / RUN_CONFIG)
    names = sorted(str(f.relative_to(tmp)) for f in tmp.rglob("*") if f.is_file())
    files = {name: sha256_file(tmp / name) for name in names}
    (tmp / "step.json").write_text(json.dumps({"step": step, "sha256": files, "digest": _digest(step, files)}))
    for f in tmp.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


# --- accelerate's save_state / load_state (FSDP, DeepSpeed: sharded weights and optimizer state) -------

ACCELERATE_STATE = "accelerate"  # the checkpoint's subfolder that accelerator.save_state writes
SHARDED = ("FSDP", "DEEPSPEED", "MEGATRON_LM")  # distributed types whose state only accelerate can gather


def uses_accelerate_state(fmt: str, accelerator) -> bool:
    """train.checkpoint_format: accelerate | prada | auto (accelerate where the state is sharded)."""
    return fmt == "accelerate" or (fmt == "auto" and accelerator.distributed_type.name in SHARDED)


def save_accelerate_checkpoint(run_dir: Path, accelerator, step: int) -> None:
    """`accelerator.save_state` (weights, optimizer, every rank's RNG) inside the same atomic swap.

    Every process calls it: under FSDP / DeepSpeed saving is a collective operation.
    """
    tmp = run_dir / CHECKPOINT_TMP
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp / ACCELERATE_STATE), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _commit(run_dir, step)
    accelerator.wait_for_everyone()


def load_accelerate_checkpoint(folder: Path, accelerator, model: torch.nn.Module) -> int:
    """`accelerator.load_state` of a checkpoint written by `save_accelerate_checkpoint` (after `prepare`)."""
    step = read_step(folder)
    try:
        accelerator.load_state(str(folder / ACCELERATE_STATE))
    except Exception as e:  # a torn or foreign file: accelerate raises whatever its reader raises
        raise _damaged(folder, f"{ACCELERATE_STATE}/ unreadable: {type(e).__name__}: {e}") from None
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad):
        raise _damaged(folder, "its weights hold NaN or inf (the run had diverged)")
    return step


def is_accelerate_checkpoint(folder: Path) -> bool:
    return (folder / ACCELERATE_STATE).is_dir()


def find_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (a kill mid-swap leaves the previous one as .checkpoint.old)."""
    for name in (CHECKPOINT, CHECKPOINT_OLD):
        folder = run_dir / name
        if (folder / "step.json").exists():
            return folder
    return None


def remove_checkpoints(run_dir: Path) -> None:
    """Drop the checkpoint folders of a finished run (a kill right after train_done.json can leave them)."""
    for name in CHECKPOINT_DIRS:
        shutil.rmtree(Path(run_dir) / name, ignore_errors=True)


def _damaged(folder: Path, why: str) -> PradaError:
    return PradaError(
        f"{folder}: damaged checkpoint ({why}); delete {folder} to restart the run from its previous "
        "checkpoint (or from scratch)"
    )


def read_step(folder: Path) -> int:
    """The checkpoint's step, after checking both files against the sha256 step.json recorded."""
    try:
        meta = json.loads((folder / "step.json").read_text(encoding="utf-8"))
        step = meta["step"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise _damaged(folder, f"step.json unreadable: {type(e).__name__}") from None
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        raise _damaged(folder, f"step.json step {step!r}")
    files = meta.get("sha256")
    if files is None:  # nothing would check the weights: an edited file would be resumed
        _check_range(folder, step)
        raise _damaged(folder, "step.json lists no sha256 of its files")
    if not isinstance(files, dict) or meta.get("digest") != _digest(step, files):
        raise _damaged(folder, "step.json does not match its digest")
    _check_range(folder, step)
    for name in files:  # a forged list could name /dev/zero, ../elsewhere or a link: hash regular files inside only
        if not _inside(folder, name):
            raise _damaged(folder, f"step.json lists {name!r}, which is not a regular file inside the checkpoint")
    needed = [n for n in REQUIRED["prada"] if n not in files] if not is_accelerate_checkpoint(folder) else []
    if needed or (is_accelerate_checkpoint(folder) and not any(n.startswith(ACCELERATE_STATE + "/") for n in files)):
        raise _damaged(folder, f"step.json does not list {', '.join(needed) or ACCELERATE_STATE + '/'}")
    for name, expected in files.items():
        if sha256_file(folder / name) != expected:
            raise _damaged(folder, f"{name} does not match its sha256")
    if RUN_CONFIG in files:
        _check_config_unchanged(folder)
    return step


def _inside(folder: Path, name: object) -> bool:
    """Whether `name` is a relative path to a regular file (not a link) inside `folder`."""
    import stat

    if not isinstance(name, str) or not name or os.path.isabs(name) or ".." in Path(name).parts:
        return False
    path = folder / name
    try:
        return all(not (folder / p).is_symlink() for p in _prefixes(name)) and stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _prefixes(name: str) -> list[str]:
    parts = Path(name).parts
    return [str(Path(*parts[: i + 1])) for i in range(len(parts))]


def _check_range(folder: Path, step: int) -> None:
    """A step at or past the run's train.max_steps cannot be resumed (the loop checks the epoch-based total)."""
    import yaml

    try:
        saved = yaml.safe_load((folder.parent / RUN_CONFIG).read_text(encoding="utf-8"))
        max_steps = saved["train"]["max_steps"]
    except Exception:  # no readable config here: the loop's own check of the total still applies
        return
    if isinstance(max_steps, int) and max_steps > 0 and step >= max_steps:
        raise _damaged(folder, f"checkpoint step {step} is outside this run's {max_steps} steps")


def _check_config_unchanged(folder: Path) -> None:
    """Refuse to resume a run whose config.yaml was edited since this checkpoint (the optimizer would keep the
    old learning rate while config.yaml claims the new one); names the keys."""
    from prada.config import load_config
    from prada.run_dir import config_differences

    run_dir = folder.parent
    try:
        changed = config_differences(
            load_config(folder / RUN_CONFIG), load_config(run_dir / RUN_CONFIG), ("at the start", "now")
        )
    except PradaError:
        return  # an unreadable config.yaml is reported where it is loaded
    if changed:
        raise PradaError(
            f"{run_dir / RUN_CONFIG} was edited after this run started ({'; '.join(changed[:6])}); a resumed run "
            f"keeps its config. Restore those values (the checkpoint's copy is {folder / RUN_CONFIG}), or start a "
            "new run with --config ... --out NEW_DIR"
        )


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore weights, optimizer and RNG in place; return the step to continue from."""
    step = read_step(folder)
    try:
        weights = load_file(str(folder / "trainable.safetensors"))
    except Exception as e:  # SafetensorError, OSError: a torn or foreign file
        raise _damaged(folder, f"trainable.safetensors unreadable: {type(e).__name__}") from None
    params = dict(model.named_parameters())
    for name, value in weights.items():
        if name not in params or params[name].shape != value.shape:
            raise _damaged(folder, f"trainable.safetensors holds {name!r}, which this student does not have")
        if not bool(torch.isfinite(value).all()):
            raise _damaged(folder, f"{name} holds NaN or inf (the run had diverged)")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    try:
        state = torch.load(folder / "state.pt", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
    except Exception as e:
        raise PradaError(
            f"{folder / 'state.pt'}: unreadable checkpoint ({type(e).__name__}); delete {folder} to restart the run"
        ) from None
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return step


class Checkpointer:
    """When a resumable checkpoint is due and writing it: every `train.save_every` steps, at least every
    `train.save_every_minutes`, and on a stop request. Every rank decides alike (clocks may differ, and
    under FSDP / DeepSpeed saving is a collective), so with several processes `due` is agreed across them."""

    def __init__(self, cfg, accelerator, run_dir: Path):
        self.cfg, self.accelerator, self.run_dir = cfg.train, accelerator, Path(run_dir)
        self.sharded = uses_accelerate_state(cfg.train.checkpoint_format, accelerator)
        self.last = time.monotonic()

    def due(self, step: int, requested: bool) -> bool:
        minutes = self.cfg.save_every_minutes
        due = (
            requested
            or bool(self.cfg.save_every and step % self.cfg.save_every == 0)
            or (minutes > 0 and time.monotonic() - self.last >= 60 * minutes)
        )
        if self.accelerator.num_processes > 1:
            flag = torch.tensor(float(due), device=self.accelerator.device)
            due = bool(self.accelerator.reduce(flag, "sum") > 0)
        return due

    def save(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
        if self.sharded:  # every process
            save_accelerate_checkpoint(self.run_dir, self.accelerator, step)
        elif self.accelerator.is_main_process:
            save_checkpoint(self.run_dir, self.accelerator.unwrap_model(model), optimizer, step)
        self.last = time.monotonic()
