"""THE training loop, for every method: batch -> losses -> backward -> clip -> step -> log -> checkpoint."""

from __future__ import annotations

import math
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from prada.config import RunConfig, load_config, save_config
from prada.distill.collate import Batch, GroupedBatches, TrainItem, build_question_items, build_train_items, collate
from prada.distill.dataset import DistillationSet, load_distillation_set
from prada.errors import PradaError
from prada.io import atomic_write_json
from prada.methods.registry import method_spec
from prada.methods.schedule import grl_lambda, lr_factor
from prada.train.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from prada.train.log import TrainLog
from prada.train.student import StepShare, Student, build_student, save_student

DONE = "train_done.json"
TARGET_SEED_OFFSET = 500_009  # target questions get their own batch order, not the source's


def make_accelerator(precision: str):
    """accelerate handles devices and processes; bf16 autocast where the hardware has it (AMX/avx512-bf16, GPUs)."""
    from accelerate import Accelerator

    if precision == "auto":
        precision = "bf16" if bf16_supported() else "fp32"
    # cpu=True without a GPU: under `accelerate launch --multi_gpu` / torchrun (LOCAL_RANK set) the
    # processes then join a gloo group; otherwise each would silently train alone at world size 1.
    return Accelerator(mixed_precision="bf16" if precision == "bf16" else "no", cpu=not torch.cuda.is_available())


def bf16_supported() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def target_batch_size(cfg: RunConfig) -> int:
    """Unlabelled target questions per process and micro-step (adversary.target_batch_size 0: the source batch's)."""
    return cfg.adversary.target_batch_size or cfg.train.batch_size


def finished_run_config(run_dir: Path) -> RunConfig:
    """The saved config of a run whose training finished; clear errors for anything else (eval/explain use it)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise PradaError(f"--run {run_dir}: not a run folder (no config.yaml); train one with `prada train`")
    if not (run_dir / DONE).exists():
        raise PradaError(
            f"--run {run_dir}: training has not finished; continue it with `prada train --resume {run_dir}`"
        )
    return load_config(run_dir / "config.yaml")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the step in flight finished and a checkpoint was written."""

    def __init__(self, run_dir: Path, step: int):
        super().__init__(f"stopped after step {step} of {run_dir}, checkpoint written")
        self.run_dir, self.step = run_dir, step


@contextmanager
def finish_step_on_interrupt(enabled: bool):
    """The first Ctrl-C sets a flag the loop reads after each step; a second one interrupts at once.

    Off with several processes: a rank that stops a step before the others would leave them waiting
    in the gradient all-reduce.
    """
    flag = {"requested": False}
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def request(signum, frame):
        flag["requested"] = True
        signal.signal(signal.SIGINT, previous)
        print("\nprada: finishing this step and writing a checkpoint (Ctrl-C again to stop at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def train(
    cfg: RunConfig | None = None, out_dir: Path | None = None, resume: Path | None = None, progress: bool = True
) -> Path:
    """Train one run into out_dir (or continue `resume`). Returns the run folder.

    prepare (folder, accelerator, data, student) -> build_batches -> build_optimizer (and resume) ->
    fit (the step loop alone) -> finish (final weights, train_done.json). The same for every method.
    """
    cfg, out_dir = resolve_run(cfg, out_dir, resume)
    if (out_dir / DONE).exists():
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
        if not (out_dir / "config.yaml").exists():
            raise PradaError(
                f"--resume {out_dir}: no config.yaml there; start the run with --config ... --out {out_dir}"
            )
        cfg = load_config(out_dir / "config.yaml")
    assert cfg is not None and out_dir is not None
    out_dir = Path(out_dir)
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
        save_config(cfg, out_dir / "config.yaml")
    data = load_distillation_set(cfg.data, cfg.seed)
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

    def micro_batch(self, g: int) -> tuple[Batch, Batch | None]:
        """Source (and target) batch of global micro-step g, for this process."""
        source = collate(
            [self.items[i] for i in self.source[g][self.rank :: self.world]], self.pad_id, self.pad_multiple
        )
        target = None
        picks = self.target[g][self.rank :: self.world] if self.with_target else []
        if picks:  # empty only when there are fewer target questions than processes
            target = collate([self.targets[i] for i in picks], self.pad_id, self.pad_multiple, with_labels=False)
        return source, target

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
    )
    targets = build_question_items(data.target_questions, tokenizer, data.domains, cfg.student.max_length)
    world, rank = run.accelerator.num_processes, run.accelerator.process_index
    source = GroupedBatches(items, cfg.train.batch_size * world, cfg.seed, drop_last=world > 1)
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
    if checkpoint is not None:
        start = load_checkpoint(checkpoint, student, optimizer)
    model, optimizer = run.accelerator.prepare(student, optimizer)
    return model, optimizer, start


# --- fit: the step loop ----------------------------------------------------------------------------------


def fit(
    run: Run, batches: StepBatches, model: torch.nn.Module, optimizer: torch.optim.Optimizer, start: int, progress: bool
) -> None:
    """Steps start..total: batch -> losses -> backward -> clip -> step -> log -> checkpoint."""
    cfg, accelerator, out_dir, total = run.cfg, run.accelerator, run.out_dir, batches.total
    grad_accum, world, device = batches.grad_accum, batches.world, accelerator.device
    log = TrainLog(out_dir / "train_log.jsonl")
    log.truncate_after(start)  # also drops the lines of a run killed before its first checkpoint
    model.train()
    bar = tqdm(
        total=total, initial=start, desc=f"train {cfg.method}", disable=not (progress and accelerator.is_main_process)
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
            for micro in range(grad_accum):
                source, target = batches.micro_batch(step * grad_accum + micro)
                tokens += int(source.attention_mask.sum()) * world  # counted on the CPU copy: no device sync
                source = source.to(device)
                target = target.to(device) if target is not None else None
                last = micro == grad_accum - 1
                with accelerator.no_sync(model) if not last else nullcontext(), accelerator.autocast():
                    losses, metrics = model(source, target, lam, share)
                    loss = sum(losses.values())
                accelerator.backward(loss)
                # stay on the device; read once per logged step. Losses add up to the step's; metrics average.
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v.detach().float()
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v.detach().float() / grad_accum
            # --- clip, step
            if cfg.train.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            # --- log, checkpoint
            done = step + 1
            if done % cfg.train.log_every == 0 or done == total:
                # mean over ranks (every rank reaches this line), so the log shows the global batch, not rank 0's share
                means = {k: float(accelerator.reduce(v, "mean")) for k, v in sums.items()}
                now = time.perf_counter()
                row = {
                    "step": done,
                    "lambda": lam if batches.with_target else 0.0,
                    "lr": optimizer.param_groups[0]["lr"],
                    "tokens_per_s": tokens / max(now - t_last, 1e-9),
                    **means,
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
            if due and done < total and accelerator.is_main_process:
                save_checkpoint(out_dir, accelerator.unwrap_model(model), optimizer, done)
                last_save = time.monotonic()
            bar.update(1)
            if interrupt["requested"] and done < total:
                bar.close()
                raise TrainingInterrupted(out_dir, done)
    bar.close()


# --- finish: the final weights and train_done.json --------------------------------------------------------


def finish(run: Run, model: torch.nn.Module, done: dict) -> None:
    """Save the trained student in HF formats, mark the run finished and drop the checkpoint it supersedes."""
    accelerator = run.accelerator
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_student(accelerator.unwrap_model(model), run.tokenizer, run.cfg, run.out_dir)
        atomic_write_json(run.out_dir / DONE, done)
        shutil.rmtree(run.out_dir / "checkpoint", ignore_errors=True)  # the final weights supersede it
    accelerator.wait_for_everyone()
