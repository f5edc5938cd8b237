"""THE training loop, for every method: batch -> losses -> backward -> clip -> step -> log -> checkpoint."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
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
from prada.methods.adversary import domain_classes
from prada.methods.registry import method_spec
from prada.methods.schedule import grl_lambda, lr_factor
from prada.progress import hidden
from prada.run_dir import (
    CONFIG,
    DONE,
    TRAIN_LOG,
    check_new_run_folder,
    make_accelerator,
    resolve_switches,
    saved_run_config,
)
from prada.train.checkpoint import (
    Checkpointer,
    find_checkpoint,
    is_accelerate_checkpoint,
    load_accelerate_checkpoint,
    load_checkpoint,
    remove_checkpoints,
)
from prada.train.diagnostics import build_heldout, heldout_figures
from prada.train.log import Trackers, TrainLog, log_row, start_banner
from prada.train.meter import Meter
from prada.train.selection import Selection, save_snapshot
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
    in the gradient all-reduce. A signal the process was started ignoring stays ignored (a background job of a
    script ignores Ctrl-C meant for the foreground; `nohup` ignores SIGHUP), as Python itself does for SIGINT.
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

    previous = {sig: signal.signal(sig, request) for sig in STOP_SIGNALS if signal.getsignal(sig) != signal.SIG_IGN}
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
    selected = fit(run, batches, model, optimizer, start, progress)
    finish(
        run,
        model,
        {
            "steps": batches.total,
            "train_items": len(batches.items),
            "target_questions": len(batches.targets),
            **selected,  # an early stop's steps, the best step
        },
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
    switches: dict[str, bool] = field(default_factory=dict)  # the device switches, resolved once (run_dir)

    @functools.cached_property
    def fingerprint(self) -> str:
        """The data's fingerprint (`data_fingerprint`) that train_done.json and every copy of the student record."""
        return data_fingerprint(self.data)


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
    switches = resolve_switches(cfg, accelerator.device)
    classes = domain_classes(data.domains, data.target_domains, cfg.adversary.labels) if data.target_domains else None
    student, tokenizer = build_student(cfg, len(data.domains), classes, switches)
    return Run(cfg, out_dir, accelerator, data, student, tokenizer, switches)


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

    def step_parts(self, step: int) -> Iterator[tuple[Batch, Batch | None, StepShare, bool]]:
        """(source, target, share, last) of every part of optimizer step `step`, over its grad_accum micro-batches."""
        share = self.share(step)
        for micro in range(self.grad_accum):
            parts = self.micro_parts(step * self.grad_accum + micro)
            for j, (source, target, rows) in enumerate(parts):
                last = micro == self.grad_accum - 1 and j == len(parts) - 1
                yield source, target, dataclasses.replace(share, source_rows=rows), last

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
    # fused or multi-tensor (foreach) AdamW; torch's default on the CPU would be a per-tensor loop
    form = {"fused": True, "foreach": None} if run.switches["fused_adamw"] else {"fused": None, "foreach": True}
    optimizer = torch.optim.AdamW(student.param_groups(cfg), lr=cfg.train.lr, **form)
    start = 0
    checkpoint = find_checkpoint(run.out_dir)
    if checkpoint is not None and not is_accelerate_checkpoint(checkpoint):
        start = load_checkpoint(checkpoint, student, optimizer)
    model, optimizer = run.accelerator.prepare(student, optimizer)
    if checkpoint is not None and is_accelerate_checkpoint(checkpoint):  # load_state restores prepared objects
        start = load_accelerate_checkpoint(checkpoint, run.accelerator, model)
    for group in optimizer.param_groups:  # a restored optimizer brings the saved run's form back: this run's switch
        group.update(form)
    return model, optimizer, start


# --- fit: the step loop ----------------------------------------------------------------------------------


def fit(
    run: Run, batches: StepBatches, model: torch.nn.Module, optimizer: torch.optim.Optimizer, start: int, progress: bool
) -> dict:
    """Steps start..total: batch -> losses -> backward -> clip -> step -> log -> checkpoint.

    Returns what train_done.json records of the model selection (`Selection.summary`: an early stop, the best step).
    """
    cfg, accelerator, total = run.cfg, run.accelerator, batches.total
    log, held, bar = open_log(run, batches, start, progress)
    select = Selection(run, held, log)  # train.keep_best, train.early_stopping_patience
    checkpointer = Checkpointer(cfg, accelerator, run.out_dir)
    adversary = accelerator.unwrap_model(model).adversary is not None
    model.train()
    t_last, tokens = time.perf_counter(), 0
    with finish_step_on_interrupt(enabled=batches.world == 1) as interrupt:
        for step in range(start, total):
            lam = grl_lambda(step / total, cfg.adversary.lambda_max, cfg.adversary.schedule, cfg.adversary.gamma)
            set_lr(optimizer, lr_factor(step, total, cfg.train.warmup_steps, cfg.train.scheduler))
            # --- forward/backward over the step's micro-batch parts, each its share of the step (StepShare),
            # so their losses sum to the step's; gradients sync on the last part only
            meter = Meter()
            for source, target, share, last in batches.step_parts(step):
                tokens += int(source.attention_mask.sum()) * batches.world  # the CPU copy: no device sync
                source, target = source.to(accelerator.device), target and target.to(accelerator.device)
                with nullcontext() if last else accelerator.no_sync(model), accelerator.autocast():
                    losses, metrics = model(source, target, lam, share)
                accelerator.backward(sum(losses.values()))
                meter.add(losses, metrics)
            # --- clip (the domain head apart from the student), step
            norms = clip_gradients(accelerator, model, cfg)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            # --- log, snapshot, checkpoint
            done = step + 1
            # every rank decides alike when to evaluate and log: a log line is a cross-process mean, entered by all
            evaluates = bool(cfg.train.eval_every) and (done % cfg.train.eval_every == 0 or done == total)
            heldout = {}
            if held is not None and evaluates:  # the held-out set lives on the main process only
                heldout = heldout_figures(accelerator.unwrap_model(model), held, accelerator.device, cfg.seed)
            stop = select.after_step(model, done, total, heldout)  # RUN_DIR/best written before the log line
            if done % cfg.train.log_every == 0 or done == total or evaluates:
                means = meter.means(accelerator.reduce, done, cfg.train.lr)  # every rank: a mean over processes
                now = time.perf_counter()
                lr, rate = optimizer.param_groups[0]["lr"], tokens / max(now - t_last, 1e-9)
                row = log_row(done, lam if adversary else None, lr, rate, norms, means, heldout)
                t_last, tokens = now, 0
                log.write(row)
                bar.set_postfix(postfix(row))
            if done in cfg.train.snapshot_steps and done < total:
                save_snapshot(run, model, done)
            if checkpointer.due(done, interrupt["requested"]) and done < total and not stop:
                checkpointer.save(model, optimizer, done)
            bar.update(1)
            if stop:  # early stopping: the run finishes here, like at its last step
                break
            if interrupt["requested"] and done < total:
                bar.close()
                log.close()
                raise TrainingInterrupted(run.out_dir, done, interrupt["signum"])
    bar.close()
    log.close()
    return select.summary(total)


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Every parameter group at `factor` times its own base lr (backbone, prompt and head have their own)."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def postfix(row: dict) -> dict[str, str]:
    """What the progress bar shows of a log row."""
    return {
        k: f"{row[k]:.3g}" for k in ("lm_loss", "domain_loss", "domain_acc", "tokens_per_s") if row.get(k) is not None
    }


def open_log(run: Run, batches: StepBatches, start: int, progress: bool) -> tuple[TrainLog, object, tqdm]:
    """The run's log (trackers on the main process only; other ranks write nothing), the held-out set of the
    diagnostics, the banner and the progress bar, for a run that starts (or resumes) at `start`."""
    cfg, accelerator, out_dir, total = run.cfg, run.accelerator, run.out_dir, batches.total
    if not 0 <= start < total:
        raise PradaError(
            f"{find_checkpoint(out_dir)}: checkpoint step {start} is outside this run's {total} steps; "
            "delete the checkpoint folder to restart the run"
        )
    main = accelerator.is_main_process
    trackers = None
    if cfg.train.log_with and main:
        trackers = Trackers(cfg.train.log_with, out_dir.name, out_dir / "tracking", config_to_dict(cfg))
    log = TrainLog(out_dir / TRAIN_LOG, trackers, enabled=main)
    log.truncate_after(start)  # also drops the lines of a run killed before its first checkpoint
    held = build_heldout(cfg, run.data, run.tokenizer) if cfg.train.eval_every and main else None
    if main and not hidden(progress):
        precision = "bf16" if accelerator.mixed_precision == "bf16" else "fp32"
        n_targets = len(batches.targets) if batches.with_target else 0
        banner = start_banner(cfg, batches.world, accelerator.device, precision, total, len(batches.items), n_targets)
        print(banner + "\n" + switches_line(run.switches), file=sys.stderr)
    bar = tqdm(total=total, initial=start, desc=f"train {cfg.method}", disable=hidden(progress) or not main)
    return log, held, bar


def switches_line(switches: dict[str, bool]) -> str:
    """The banner line that says which path each device switch took in this run."""
    return "  switches: " + ", ".join(f"{k} {'on' if v else 'off'}" for k, v in switches.items())


def clip_gradients(accelerator, model: torch.nn.Module, cfg: RunConfig) -> dict[str, float | None]:
    """Clip the student's gradient norm (train.max_grad_norm) and the domain head's apart (adversary.max_grad_norm),
    so a large head gradient never shrinks the student's step. 0: measured, not clipped. The norms, for the log
    (None where a DeepSpeed engine clips itself)."""
    adversary = accelerator.unwrap_model(model).adversary
    head = {id(p) for p in adversary.parameters()} if adversary is not None else set()
    student = [p for p in model.parameters() if id(p) not in head]
    norms = {"grad_norm": accelerator.clip_grad_norm_(student, cfg.train.max_grad_norm or math.inf)}
    if head:
        norms["head_grad_norm"] = accelerator.clip_grad_norm_(
            list(adversary.parameters()), cfg.adversary.max_grad_norm or math.inf
        )
    return norms


# --- finish: the final weights and train_done.json --------------------------------------------------------


def finish(run: Run, model: torch.nn.Module, done: dict) -> None:
    """Save the trained student in HF formats, mark the run finished and drop the checkpoint it supersedes."""
    accelerator = run.accelerator
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_student(accelerator.unwrap_model(model), run.tokenizer, run.cfg, run.out_dir)
        atomic_write_json(run.out_dir / DONE, {**done, "switches": run.switches, "data": run.fingerprint})
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
