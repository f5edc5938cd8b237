"""THE training loop, for every method: batch -> losses -> backward -> clip -> step -> log -> checkpoint."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from prada.config import RunConfig, config_to_dict, save_config
from prada.distill.collate import (
    Batch,
    GroupedBatches,
    TrainItem,
    build_question_items,
    build_train_items,
    collate,
    split_by_length,
)
from prada.distill.dataset import DistillationSet, load_distillation_set, prepare_data
from prada.errors import PradaError
from prada.io import atomic_write_json, folder_lock
from prada.methods.registry import method_spec
from prada.methods.schedule import grl_lambda, lr_factor
from prada.progress import hidden
from prada.run_dir import (  # the run folder's names and checks; re-exported for older imports
    CONFIG,
    DONE,
    TRAIN_LOG,
    TRUST_REMOTE_CODE_ENV,  # noqa: F401
    bf16_supported,  # noqa: F401
    check_new_run_folder,
    finished_run_config,  # noqa: F401
    make_accelerator,
    saved_run_config,
)
from prada.train.checkpoint import (
    find_checkpoint,
    is_accelerate_checkpoint,
    load_accelerate_checkpoint,
    load_checkpoint,
    remove_checkpoints,
    save_accelerate_checkpoint,
    save_checkpoint,
    uses_accelerate_state,
)
from prada.train.diagnostics import build_heldout, heldout_figures
from prada.train.log import Trackers, TrainLog, start_banner
from prada.train.student import StepShare, Student, build_student, save_student

TARGET_SEED_OFFSET = 500_009  # target questions get their own batch order, not the source's


def target_batch_size(cfg: RunConfig) -> int:
    """Unlabelled target questions per process and micro-step (adversary.target_batch_size 0: the source batch's)."""
    return cfg.adversary.target_batch_size or cfg.train.batch_size


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM/SIGHUP) during training, after the step in flight finished and a checkpoint was written."""

    def __init__(self, run_dir: Path, step: int, signum: int = signal.SIGINT):
        super().__init__(f"stopped after step {step} of {run_dir}, checkpoint written")
        self.run_dir, self.step, self.signum = run_dir, step, signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Ctrl-C, and what Slurm, Kubernetes, `docker stop`, `timeout` and a closed terminal send."""


@contextmanager
def finish_step_on_interrupt(enabled: bool):
    """The first Ctrl-C, SIGTERM or SIGHUP sets a flag the loop reads after each step; a second one stops at once.

    Off with several processes: a rank that stops a step before the others would leave them waiting
    in the gradient all-reduce.
    """
    flag = {"requested": False, "signum": signal.SIGINT}
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def request(signum, frame):
        flag["requested"], flag["signum"] = True, signum
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\nprada: {name}: finishing this step and writing a checkpoint (again to stop at once)", file=sys.stderr)

    previous = {sig: signal.signal(sig, request) for sig in STOP_SIGNALS}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train(
    cfg: RunConfig | None = None, out_dir: Path | None = None, resume: Path | None = None, progress: bool = True
) -> Path:
    """Train one run into out_dir (or continue `resume`). Returns the run folder.

    prepare (folder, accelerator, data, student) -> build_batches -> build_optimizer (and resume) ->
    fit (the step loop alone) -> finish (final weights, train_done.json). The same for every method.
    The run folder is locked meanwhile: a second `prada train` or `prada run` on it is one clear error.
    """
    cfg, out_dir = resolve_run(cfg, out_dir, resume)
    with run_folder_lock(out_dir, f"prada train --resume {out_dir}"):
        return _train_locked(cfg, out_dir, progress)


def run_folder_lock(out_dir: Path, command: str):
    """The run folder's lock; taken by the main process only (the other ranks of a launch share the folder)."""
    if any(os.environ.get(k, "0") != "0" for k in ("RANK", "LOCAL_RANK")):
        return nullcontext()
    return folder_lock(out_dir, command)


def _train_locked(cfg: RunConfig, out_dir: Path, progress: bool) -> Path:
    if (out_dir / DONE).exists():
        remove_checkpoints(out_dir)  # a kill between train_done.json and their removal leaves them
        return out_dir
    if not method_spec(cfg.method).model:  # prior: no student at all; the run is its config
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / CONFIG)
        atomic_write_json(out_dir / DONE, {"steps": 0})
        return out_dir
    run = prepare(cfg, out_dir)
    if not method_spec(cfg.method).train:  # zero-shot: nothing to train, the run is the untouched student
        finish(run, run.student, {"steps": 0})
        return out_dir
    batches = build_batches(run)
    model, optimizer, start = build_optimizer(run)
    fit(run, batches, model, optimizer, start, progress)
    finish(
        run,
        model,
        {"steps": batches.total, "train_items": len(batches.items), "target_questions": len(batches.targets)},
    )
    return out_dir


# --- prepare: the run folder, the accelerator, the data and the student ---------------------------------


@dataclass
class Run:
    """One training run, as `prepare` sets it up: what every later stage of `train` reads."""

    cfg: RunConfig
    out_dir: Path
    accelerator: object  # accelerate.Accelerator
    data: DistillationSet
    student: Student
    tokenizer: object


def resolve_run(cfg: RunConfig | None, out_dir: Path | None, resume: Path | None) -> tuple[RunConfig, Path]:
    """The config and folder of a new run, or of the interrupted run `resume` (its saved config)."""
    if resume is not None:
        out_dir = Path(resume)
        if not (out_dir / CONFIG).exists():
            raise PradaError(
                f"--resume {out_dir}: no config.yaml there; start the run with --config ... --out {out_dir}"
            )
        cfg = saved_run_config(out_dir)
    assert cfg is not None and out_dir is not None
    out_dir = Path(out_dir)
    if resume is None:
        check_new_run_folder(cfg, out_dir)  # a user's folder or another config's finished run: untouched
    if resume is None and not (out_dir / DONE).exists() and find_checkpoint(out_dir) is not None:
        raise PradaError(
            f"{out_dir} holds an interrupted run; continue it with `prada train --resume {out_dir}` or pick a new --out"
        )
    return cfg, out_dir


def prepare(cfg: RunConfig, out_dir: Path) -> Run:
    """Create the folder, start accelerate, write config.yaml, load the data and build the student."""
    out_dir.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(cfg.train.precision)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if accelerator.is_main_process:
        save_config(cfg, out_dir / CONFIG)
    prepare_data(cfg.data)  # the data step: builds the benchmark folder once if it is missing
    data = load_distillation_set(cfg.data, cfg.seed)  # reads only
    student, tokenizer = build_student(cfg, num_domains=len(data.domains))
    return Run(cfg, out_dir, accelerator, data, student, tokenizer)


# --- batches: tokenised once; length-grouped; the global batch split across processes -------------------


@dataclass
class StepBatches:
    """Global micro-step g -> this process's (source, target) batches, and each step's `StepShare`.

    A pure function of (seed, g), so a resumed run replays the same batches.
    """

    items: list[TrainItem]  # labelled source items
    targets: list[TrainItem]  # unlabelled target questions
    source: GroupedBatches
    target: GroupedBatches
    total: int  # optimizer steps
    grad_accum: int
    world: int
    rank: int
    pad_id: int
    pad_multiple: int
    with_target: bool
    split_by_length: bool = False

    def micro_batch(self, g: int) -> tuple[Batch, Batch | None]:
        """Source (and target) batch of global micro-step g, for this process, as one batch."""
        (source, target, _), *_ = self.micro_parts(g, split=False)
        return source, target

    def micro_parts(self, g: int, split: bool | None = None) -> list[tuple[Batch, Batch | None, float]]:
        """`micro_batch(g)` as (source, target, share of the source rows) per length group of its rows.

        With `split_by_length` a domain-mixed batch runs as up to three groups of similar length (the
        target batch rides with the first), so mixing domains does not pad short rows to long ones.
        """
        rows = [self.items[i] for i in self.source[g][self.rank :: self.world]]
        picks = self.target[g][self.rank :: self.world] if self.with_target else []
        target = (
            collate([self.targets[i] for i in picks], self.pad_id, self.pad_multiple, with_labels=False)
            if picks
            else None
        )
        groups = [list(range(len(rows)))]
        if (self.split_by_length if split is None else split) and rows:
            groups = split_by_length([len(r.prompt_ids) + len(r.target_ids) for r in rows], self.pad_multiple)
        return [
            (
                collate([rows[i] for i in group], self.pad_id, self.pad_multiple),
                target if k == 0 else None,
                len(group) / len(rows),
            )
            for k, group in enumerate(groups)
        ]

    def share(self, step: int) -> StepShare:
        """The step's label tokens over every micro-batch and process, known here without communication."""
        g0 = step * self.grad_accum
        # every target token is a label: the prompt before it is never empty
        n = sum(len(self.items[i].target_ids) for g in range(g0, g0 + self.grad_accum) for i in self.source[g])
        return StepShare(label_tokens=max(n, 1) / self.world, micro_batches=self.grad_accum)


def build_batches(run: Run) -> StepBatches:
    """Tokenise the source items and target questions once and group them into batches by length."""
    cfg, data, tokenizer = run.cfg, run.data, run.tokenizer
    items = build_train_items(
        data.source_train,
        tokenizer,
        data.domains,
        cfg.student.max_length,
        cfg.data.only_correct,
        cfg.data.max_rationales_per_question,
        with_rationale=method_spec(cfg.method).rationale,
    )
    if not any(item.prompt_ids and item.target_ids for item in items):  # a label needs a token before it
        raise PradaError(
            f"student.max_length={cfg.student.max_length} leaves no target token to train on "
            f"({len(items)} training items); raise student.max_length"
        )
    targets = build_question_items(data.target_questions, tokenizer, data.domains, cfg.student.max_length)
    world, rank = run.accelerator.num_processes, run.accelerator.process_index
    source = GroupedBatches(
        items, cfg.train.batch_size * world, cfg.seed, drop_last=world > 1, mix_domains=cfg.train.mix_domains
    )
    total = cfg.train.max_steps or max(1, math.ceil(cfg.train.epochs * source.per_epoch / cfg.train.grad_accum))
    # unlabelled target questions: length-grouped too (random questions padded to the longest of a
    # batch were ~40% padding on ftcot12), every question once per target epoch, its own order
    target = GroupedBatches(targets, target_batch_size(cfg) * world, cfg.seed + TARGET_SEED_OFFSET, drop_last=True)
    return StepBatches(
        items,
        targets,
        source,
        target,
        total,
        cfg.train.grad_accum,
        world,
        rank,
        tokenizer.pad_token_id,
        cfg.student.pad_multiple,
        with_target=run.student.wants_target,
        split_by_length=cfg.train.split_by_length,
    )


def build_optimizer(run: Run) -> tuple[torch.nn.Module, torch.optim.Optimizer, int]:
    """AdamW over the student's parameter groups, restored from the run's checkpoint if it has one.

    Returns the student and optimizer as accelerate wrapped them, and the first step to run.
    """
    student, cfg = run.student, run.cfg
    # multi-tensor AdamW: fused kernels on a GPU, foreach on the CPU (the default there is a per-tensor loop)
    fused = torch.cuda.is_available()
    optimizer = torch.optim.AdamW(
        student.param_groups(cfg), lr=cfg.train.lr, fused=fused or None, foreach=None if fused else True
    )
    start = 0
    checkpoint = find_checkpoint(run.out_dir)
    if checkpoint is not None and not is_accelerate_checkpoint(checkpoint):
        start = load_checkpoint(checkpoint, student, optimizer)
    model, optimizer = run.accelerator.prepare(student, optimizer)
    if checkpoint is not None and is_accelerate_checkpoint(checkpoint):  # load_state restores prepared objects
        start = load_accelerate_checkpoint(checkpoint, run.accelerator, model)
    return model, optimizer, start


# --- fit: the step loop ----------------------------------------------------------------------------------


def fit(
    run: Run, batches: StepBatches, model: torch.nn.Module, optimizer: torch.optim.Optimizer, start: int, progress: bool
) -> None:
    """Steps start..total: batch -> losses -> backward -> clip -> step -> log -> checkpoint."""
    cfg, accelerator, out_dir, total = run.cfg, run.accelerator, run.out_dir, batches.total
    grad_accum, world, device = batches.grad_accum, batches.world, accelerator.device
    if not 0 <= start < total:
        raise PradaError(
            f"{find_checkpoint(out_dir)}: checkpoint step {start} is outside this run's {total} steps; "
            "delete the checkpoint folder to restart the run"
        )
    trackers = None
    if cfg.train.log_with and accelerator.is_main_process:  # accelerate's trackers, main process only
        trackers = Trackers(cfg.train.log_with, out_dir.name, out_dir / "tracking", config_to_dict(cfg))
    log = TrainLog(out_dir / TRAIN_LOG, trackers)
    log.truncate_after(start)  # also drops the lines of a run killed before its first checkpoint
    held = None
    if cfg.train.eval_every and accelerator.is_main_process:  # main process only: no collective op inside
        held = build_heldout(cfg, run.data, run.tokenizer)
    model.train()
    if accelerator.is_main_process and not hidden(progress):
        precision = "bf16" if accelerator.mixed_precision == "bf16" else "fp32"
        n_items, n_targets = len(batches.items), len(batches.targets) if batches.with_target else 0
        print(start_banner(cfg, world, device, precision, total, n_items, n_targets), file=sys.stderr)
    bar = tqdm(
        total=total,
        initial=start,
        desc=f"train {cfg.method}",
        disable=hidden(progress) or not accelerator.is_main_process,
    )
    t_last, tokens = time.perf_counter(), 0
    last_save = time.monotonic()  # a checkpoint is due save_every_minutes after this (or after the last one)
    with finish_step_on_interrupt(enabled=world == 1) as interrupt:
        for step in range(start, total):
            p = step / total
            lam = grl_lambda(p, cfg.adversary.lambda_max, cfg.adversary.schedule, cfg.adversary.gamma)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * lr_factor(step, total, cfg.train.warmup_steps)
            # --- forward/backward over grad_accum micro-batches; sync gradients only on the last.
            # Each micro-batch's losses are its share of the step (StepShare), so their sum is the step's loss.
            share = batches.share(step)
            sums: dict[str, torch.Tensor] = {}  # losses summed and metrics averaged over the micro-batches
            weights: dict[str, float] = {}
            for micro in range(grad_accum):
                parts = batches.micro_parts(step * grad_accum + micro)
                for j, (source, target, rows) in enumerate(parts):
                    tokens += int(source.attention_mask.sum()) * world  # counted on the CPU copy: no device sync
                    source = source.to(device)
                    target = target.to(device) if target is not None else None
                    last = micro == grad_accum - 1 and j == len(parts) - 1
                    part_share = dataclasses.replace(share, source_rows=rows)
                    with accelerator.no_sync(model) if not last else nullcontext(), accelerator.autocast():
                        losses, metrics = model(source, target, lam, part_share)
                        loss = sum(losses.values())
                    accelerator.backward(loss)
                    # stay on the device; read once per logged step. Losses add up to the step's; metrics are
                    # row-weighted means (a target-only figure comes from the one group that carries the target).
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0.0) + v.detach().float()
                    for k, v in metrics.items():
                        w = 1.0 if "target" in k else rows
                        sums[k] = sums.get(k, 0.0) + v.detach().float() * w
                        weights[k] = weights.get(k, 0.0) + w
            for k, w in weights.items():
                sums[k] = sums[k] / w
            # --- clip, step
            # (max_grad_norm 0: measured, not clipped; a DeepSpeed engine clips itself and returns None)
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm or math.inf)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            # --- log, checkpoint
            done = step + 1
            heldout = {}
            if held is not None and (done % cfg.train.eval_every == 0 or done == total):
                heldout = heldout_figures(accelerator.unwrap_model(model), held, device, cfg.seed)
            if done % cfg.train.log_every == 0 or done == total or heldout:
                # mean over ranks (every rank reaches this line), so the log shows the global batch, not rank 0's share
                means = {k: float(accelerator.reduce(v, "mean")) for k, v in sums.items()}
                bad = {k: v for k, v in means.items() if not math.isfinite(v)}
                if bad:  # nothing to resume from: NaN weights would only train on as NaN
                    raise PradaError(
                        f"step {done}: {', '.join(f'{k} = {v}' for k, v in bad.items())}: training diverged "
                        f"(train.lr={cfg.train.lr:g}); lower train.lr and start the run again in a new --out"
                    )
                now = time.perf_counter()
                row = {
                    "step": done,
                    "lambda": lam if batches.with_target else 0.0,
                    "lr": optimizer.param_groups[0]["lr"],
                    "tokens_per_s": tokens / max(now - t_last, 1e-9),
                    "grad_norm": None if grad_norm is None else float(grad_norm),
                    **means,
                    **heldout,
                }
                t_last, tokens = now, 0
                if accelerator.is_main_process:
                    log.write(row)
                bar.set_postfix(
                    {k: f"{row[k]:.3g}" for k in ("lm_loss", "domain_loss", "domain_acc", "tokens_per_s") if k in row}
                )
            due = (
                interrupt["requested"]
                or (cfg.train.save_every and done % cfg.train.save_every == 0)
                or (
                    cfg.train.save_every_minutes > 0
                    and time.monotonic() - last_save >= 60 * cfg.train.save_every_minutes
                )
            )
            if world > 1:  # every rank decides alike (the clock may differ): saving can be a collective
                due = bool(accelerator.reduce(torch.tensor(float(bool(due)), device=device), "sum") > 0)
            if due and done < total and uses_accelerate_state(cfg.train.checkpoint_format, accelerator):
                save_accelerate_checkpoint(out_dir, accelerator, done)  # every process
                last_save = time.monotonic()
            elif due and done < total and accelerator.is_main_process:
                save_checkpoint(out_dir, accelerator.unwrap_model(model), optimizer, done)
                last_save = time.monotonic()
            bar.update(1)
            if interrupt["requested"] and done < total:
                bar.close()
                log.close()
                raise TrainingInterrupted(out_dir, done, interrupt["signum"])
    bar.close()
    log.close()


# --- finish: the final weights and train_done.json --------------------------------------------------------


def finish(run: Run, model: torch.nn.Module, done: dict) -> None:
    """Save the trained student in HF formats, mark the run finished and drop the checkpoint it supersedes."""
    accelerator = run.accelerator
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_student(accelerator.unwrap_model(model), run.tokenizer, run.cfg, run.out_dir)
        atomic_write_json(run.out_dir / DONE, {**done, "data": data_fingerprint(run.data)})
        remove_checkpoints(run.out_dir)  # the final weights supersede them
    accelerator.wait_for_everyone()


def data_fingerprint(data: DistillationSet) -> str:
    """sha256 of every example a run trains and is tested on: `prada run` refuses a finished run whose data changed."""
    h = hashlib.sha256()
    parts = [("source", data.source_train), ("target", data.target_questions)]
    parts += [(f"test/{k}", v) for k, v in sorted(data.test_sets.items())]
    for name, examples in parts:
        h.update(name.encode())
        for ex in examples:
            h.update(json.dumps(ex.to_dict(), sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()
