"""Training throughput: prada's training loop (methods prada and ft-cot) vs a plain transformers.Trainer.

All three contenders train the same model on the same tokenised sequences (every one exactly --seq
tokens, so every batch is (--batch, --seq)), at the same batch size and dtype, each in its own
subprocess so that peak RSS is per contender:

- `prada`  / `ft-cot`: `prada.train.loop.train` itself on a prepared data folder with
  train.max_steps = warmup + steps; the step times come from its train_log.jsonl (tokens / tokens_per_s,
  i.e. wall time between consecutive logged steps: data, forward, backward, clip, optimizer, log).
- `hf-trainer`: `transformers.Trainer` (its default optimizer, bf16 via TrainingArguments(bf16=True),
  use_cpu on a CPU), the same collate function; step times between consecutive `on_step_end` callbacks.
- `hf-trainer-grouped`: the same Trainer with its length-grouped sampler (`group_by_length`), the
  strong baseline: the plain one samples at random and pads every batch to its longest row.

The first --warmup steps of each are skipped. The machine's matmul peak (a large torch.matmul in
the same dtype) is measured in the same run, so the FLOP rate 6 * params * tokens/s can be read as
a fraction of it. Prints one JSON object as the last line.

    python benchmarks/train_throughput.py                  # SmolLM2-135M, batch 8, seq 256
    python benchmarks/train_throughput.py --quick          # fits in about a minute on a 2-core CPU
    python benchmarks/train_throughput.py --profile        # + torch.profiler table of the prada step
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import (  # noqa: E402
    SHARED_DATA,
    TARGET_DOMAIN,
    add_switch,
    emit,
    host_state,
    machine,
    make_bench_data,
    matmul_peak_flops,
    peak_gpu_gib,
    peak_rss_gib,
    pick_device,
    print_last_line,
    resolve_dtype,
    run_worker,
    sync,
)

CONTENDERS = ("prada", "ft-cot", "hf-trainer", "hf-trainer-grouped")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model",
        default=None,
        help="prada alias (smollm2-135m, tiny-random) or HF folder (default smollm2-135m; --quick: tiny-random)",
    )
    p.add_argument("--batch", type=int, default=None, help="sequences per step (default 8)")
    p.add_argument("--seq", type=int, default=None, help="tokens per sequence (default 256)")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bf16", "fp32"],
        help="auto: bf16 where it pays (GPUs, CPUs with AMX), else fp32, as train.precision=auto",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="measured steps per contender (default 6 CPU / 30 GPU; --quick: 3)"
    )
    p.add_argument(
        "--warmup", type=int, default=None, help="steps skipped before measuring (default 2 CPU / 5 GPU; --quick: 1)"
    )
    p.add_argument(
        "--lengths",
        default="fixed",
        choices=["fixed", "spread", "ftcot12"],
        help="fixed: every sequence exactly --seq tokens (same work per batch for every trainer); "
        "spread: lengths over [seq/4, seq], so batching and padding count too; "
        "ftcot12: the real questions and teacher rationales (--ftcot12-source), cut at --seq",
    )
    p.add_argument(
        "--data-folder",
        default=None,
        help="train on this prepared data folder as it is (e.g. data/study2/synth2real), instead of --lengths' data",
    )
    p.add_argument(
        "--target-domain",
        default=TARGET_DOMAIN,
        help=f"the data's target domain, whose training questions feed prada's adversary (default {TARGET_DOMAIN})",
    )
    p.add_argument(
        "--ftcot12-source",
        default=str(SHARED_DATA),
        help="for --lengths ftcot12: a folder laid out like ../shared/data (default: the one beside the repo)",
    )
    p.add_argument(
        "--patch",
        default="",
        choices=["", "adamw-foreach", "adamw-fused"],
        help="measure a proposed loop change: build prada's AdamW with foreach=True or fused=True",
    )
    p.add_argument(
        "--target-batch",
        type=int,
        default=0,
        help="prada's unlabelled target questions per step, adversary.target_batch_size (default 0: = --batch, "
        "as the loop's default); the prada/ft-cot step ratio follows it",
    )
    p.add_argument(
        "--adversary-layer",
        type=int,
        default=-1,
        help="prada's adversary.layer, the hidden state the domain features pool (default -1, the top); "
        "below the top the target pass stops at that layer",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny-random model, 1+2 steps: about a minute on a 2-core CPU (loop overhead, not SmolLM2 speed)",
    )
    p.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"comma list of {', '.join(CONTENDERS)}; prada and ft-cot also as METHOD@KEY=VALUE[@KEY=VALUE] "
        "(a config override, e.g. ft-cot@train.backbone=lora, measured beside METHOD: field `variants`)",
    )
    add_switch(
        p,
        "--keep-freed-memory",
        "PRADA_KEEP_FREED_MEMORY in every contender's process, as `prada train` and `prada run` apply it "
        "(the Trainer's too: like for like)",
    )
    p.add_argument("--profile", action="store_true", help="also profile the prada step (torch.profiler) into --workdir")
    p.add_argument("--workdir", default=None, help="keep data, runs and worker logs here (default: a temp folder)")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every contender this many times, order alternating (ABC CBA ...), steps pooled",
    )
    p.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    gpu = torch.cuda.is_available()
    a.model = a.model or ("tiny-random" if a.quick else "smollm2-135m")
    a.batch = a.batch or 8
    a.seq = a.seq or 256
    a.steps = a.steps or (3 if a.quick else 30 if gpu else 6)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.quick else 5 if gpu else 2)
    a.dtype = resolve_dtype(a.dtype)
    return a


# --- the run config every contender shares -----------------------------------------------------------


def split_contender(name: str) -> tuple[str, list[str]]:
    """`ft-cot@train.backbone=lora@...` -> ("ft-cot", ["train.backbone=lora", ...]): a loop contender with
    config overrides, so one switch at a time is measured beside the same method without it."""
    method, *overrides = name.split("@")
    return method, overrides


def bench_config(a: argparse.Namespace, method: str, out_steps: int | None = None, overrides: list[str] = ()):
    from prada.config import load_config

    return load_config(
        None,
        [
            f"method={method}",
            "seed=0",
            "data.benchmark=none",
            f"data.data_dir={a.data}",
            f"data.target_domains=[{a.target_domain}]",
            f"student.model={a.model}",
            f"student.max_length={a.seq}",
            f"train.batch_size={a.batch}",
            f"train.max_steps={out_steps or a.warmup + a.steps}",
            f"train.precision={a.dtype}",
            "train.log_every=1",
            "train.save_every=0",
            f"adversary.target_batch_size={a.target_batch}",
            f"adversary.layer={a.adversary_layer}",
            *overrides,
        ],
    )


def bench_items(cfg):
    """The tokenised training items prada builds for this config (and the tokenizer)."""
    from prada.distill.collate import build_train_items
    from prada.distill.dataset import load_distillation_set, prepare_data
    from prada.model_aliases import resolve_model
    from prada.train.backbones import load_tokenizer

    prepare_data(cfg.data)
    data = load_distillation_set(cfg.data, cfg.seed)
    tokenizer = load_tokenizer(resolve_model(cfg.student.model))
    items = build_train_items(data.source_train, tokenizer, data.domains, cfg.student.max_length)
    return items, tokenizer, data


def count_params(model_name: str) -> int:
    """Parameters of the causal LM (tied embeddings counted once), without loading its weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from prada.model_aliases import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(model_name))  # outside "meta": resolving may build the model
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _summary(step_s: list[float], real: list[int], labelled: list[int], padded: list[int], warmup: int) -> dict:
    """tokens/s over the measured steps (after `warmup`): real (non-pad) tokens, and labelled (supervised) tokens."""
    measured = {
        "step_s": step_s[warmup:],
        "real": real[warmup:],
        "labelled": labelled[warmup:],
        "padded": padded[warmup:],
    }
    return {**_rates(measured), "measured": measured, "step_s": [round(x, 4) for x in step_s]}


def _rates(m: dict) -> dict:
    t = sum(m["step_s"])
    return {
        "tokens_per_s": sum(m["real"]) / t,
        "supervised_tokens_per_s": sum(m["labelled"]) / t,
        "step_s_median": statistics.median(m["step_s"]),
        "pad_fraction": 1 - sum(m["real"]) / sum(m["padded"]),
    }


def _pool(runs: list[dict]) -> dict:
    """One contender's rounds as one sample: measured steps pooled, the largest peak memory."""
    measured = {k: [x for r in runs for x in r["measured"][k]] for k in runs[0]["measured"]}
    peaks = [r["peak_gpu_gib"] for r in runs if r.get("peak_gpu_gib") is not None]
    return {
        **runs[-1],
        **_rates(measured),
        "measured": measured,
        "rounds": len(runs),
        "step_s": [r["step_s"] for r in runs],
        "wall_s": sum(r["wall_s"] for r in runs),
        "peak_rss_gib": max(r["peak_rss_gib"] for r in runs),
        "peak_gpu_gib": max(peaks) if peaks else None,
    }


def _patch_optimizer(patch: str) -> None:
    """For --patch: make the loop's `torch.optim.AdamW(...)` build the foreach or fused implementation."""
    if not patch:
        return
    import functools

    torch.optim.AdamW = functools.partial(
        torch.optim.AdamW, **({"foreach": True} if patch == "adamw-foreach" else {"fused": True})
    )


# --- workers (each runs in its own process) -------------------------------------------------------------


def prada_worker(a: argparse.Namespace, contender: str) -> dict:
    from prada.distill.collate import GroupedBatches, padded_length
    from prada.train.log import TrainLog
    from prada.train.loop import train

    method, overrides = split_contender(contender)
    cfg = bench_config(a, method, overrides=overrides)
    items, tokenizer, data = bench_items(cfg)
    lengths = [len(i.prompt_ids) + len(i.target_ids) for i in items]
    if a.lengths == "fixed" and not a.data_folder:
        assert set(lengths) == {a.seq}, f"bench data must give {a.seq}-token sequences, got {sorted(set(lengths))}"
    _patch_optimizer(a.patch)
    variant = "".join(f"-{o.replace('/', '_')}" for o in overrides)
    out = Path(a.workdir) / f"run-{method}{variant}{'-' + a.patch if a.patch else ''}-r{a.round}"
    t0 = time.perf_counter()
    train(cfg, out, progress=False)
    wall = time.perf_counter() - t0
    rows = TrainLog(out / "train_log.jsonl").rows()
    # the loop's batches, rebuilt with its own pure functions (1 process): tokens of each step
    batches = GroupedBatches(items, a.batch, cfg.seed)
    real, labelled, padded = [], [], []
    for step in range(len(rows)):
        batch = batches[step]
        real.append(sum(lengths[i] for i in batch))
        labelled.append(sum(len(items[i].target_ids) for i in batch))
        padded.append(len(batch) * padded_length(max(lengths[i] for i in batch), cfg.student.pad_multiple))
    step_s = [n / r["tokens_per_s"] for n, r in zip(real, rows)]  # the loop logs real tokens / wall time per step
    result = {
        **_summary(step_s, real, labelled, padded, a.warmup),
        "wall_s": wall,
        "final_lm_loss": rows[-1]["lm_loss"],
    }
    if method == "prada":  # the adversary's target batches: backbone work ft-cot does not do
        target_padded = target_positions(cfg, tokenizer, data, len(rows))
        result["target_token_fraction"] = sum(target_padded[a.warmup :]) / sum(padded[a.warmup :])
    return result


def target_positions(cfg, tokenizer, data, steps: int) -> list[int]:
    """Padded positions of the target (unlabelled question) batch of each step, as the loop collates them."""
    from prada.distill.collate import GroupedBatches, build_question_items, padded_length
    from prada.train.loop import TARGET_SEED_OFFSET, target_batch_size

    targets = build_question_items(data.target_questions, tokenizer, data.domains, cfg.student.max_length)
    batches = GroupedBatches(targets, target_batch_size(cfg), cfg.seed + TARGET_SEED_OFFSET, drop_last=True)
    return [
        len(batches[s]) * padded_length(max(len(targets[i].prompt_ids) for i in batches[s]), cfg.student.pad_multiple)
        for s in range(steps)
    ]


def target_layer_share(model: str, layer: int) -> float:
    """Share of the decoder layers the target pass runs for adversary.layer (Student.layer_states stops there)."""
    from transformers import AutoConfig

    from prada.model_aliases import resolve_model
    from prada.train.student import feature_state_index

    n = AutoConfig.from_pretrained(resolve_model(model)).num_hidden_layers
    index = feature_state_index(layer, n)
    return 1.0 if index == n else index / n


def hf_trainer_worker(a: argparse.Namespace, grouped: bool = False) -> dict:
    """transformers.Trainer on prada's items and collate; `grouped`: its length-grouped sampler, the
    strong baseline against prada's length-grouped batches (the plain Trainer samples at random)."""
    import dataclasses

    from transformers import Trainer, TrainerCallback, TrainingArguments

    from prada.distill.collate import collate
    from prada.model_aliases import resolve_model
    from prada.train.backbones import load_causal_lm

    cfg = bench_config(a, "ft-cot")
    items, tokenizer, _ = bench_items(cfg)
    device = pick_device()
    model = load_causal_lm(resolve_model(a.model))  # fp32 weights, SDPA: exactly what prada loads
    model.config.use_cache = False
    pad_id, multiple = tokenizer.pad_token_id, cfg.student.pad_multiple
    real: list[int] = []
    labelled: list[int] = []
    padded: list[int] = []

    def collator(features):  # prada's own collate: same padding, same -100 label mask
        b = collate([f["item"] if isinstance(f, dict) else f for f in features], pad_id, multiple)
        real.append(int(b.attention_mask.sum()))
        labelled.append(b.num_target_tokens)
        padded.append(b.input_ids.numel())
        return {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "labels": b.labels}

    ends: list[float] = []

    class StepTimes(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            ends.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            sync(device)
            ends.append(time.perf_counter())

    grouping = {}
    if grouped:  # the Trainer reads each example's length from its input_ids
        fields = {f.name for f in dataclasses.fields(TrainingArguments)}
        grouping = (
            {"train_sampling_strategy": "group_by_length"}
            if "train_sampling_strategy" in fields
            else {"group_by_length": True}
        )
        items = [{"input_ids": it.prompt_ids + it.target_ids, "item": it} for it in items]
    args = TrainingArguments(
        output_dir=str(Path(a.workdir) / f"run-hf-trainer{'-grouped' if grouped else ''}-r{a.round}"),
        **grouping,
        per_device_train_batch_size=a.batch,
        max_steps=a.warmup + a.steps,
        learning_rate=cfg.train.lr,
        weight_decay=0.0,
        max_grad_norm=cfg.train.max_grad_norm,
        bf16=a.dtype == "bf16",
        use_cpu=device.type == "cpu",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_pin_memory=device.type == "cuda",
        seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=items, data_collator=collator, callbacks=[StepTimes()])
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    step_s = [b - e for e, b in zip(ends, ends[1:])]
    n = len(step_s)  # the dataloader may have collated one batch ahead
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        **_summary(step_s, real[:n], labelled[:n], padded[:n], a.warmup),
        "wall_s": wall,
        "final_lm_loss": losses[-1] if losses else None,
        "optimizer": args.optim.value if hasattr(args.optim, "value") else str(args.optim),
    }


def profile_worker(a: argparse.Namespace) -> dict:
    """torch.profiler over the loop's step (student forward, backward, clip, AdamW) for method prada."""
    from torch.profiler import ProfilerActivity, profile

    from prada.distill.collate import GroupedBatches, build_question_items, collate
    from prada.train.loop import TARGET_SEED_OFFSET, target_batch_size
    from prada.train.student import build_student

    cfg = bench_config(a, "prada")
    items, tokenizer, data = bench_items(cfg)
    device = pick_device()
    student, _ = build_student(cfg, num_domains=len(data.domains))
    student.to(device).train()
    targets = build_question_items(data.target_questions, tokenizer, data.domains, cfg.student.max_length)
    target_batches = GroupedBatches(targets, target_batch_size(cfg), cfg.seed + TARGET_SEED_OFFSET, drop_last=True)
    optimizer = torch.optim.AdamW(student.param_groups(cfg), lr=cfg.train.lr)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16")
    phases: dict[str, list[float]] = {"forward": [], "backward": [], "clip+optimizer": []}

    def step(s: int) -> None:
        source = collate(
            items[(s * a.batch) % len(items) :][: a.batch], tokenizer.pad_token_id, cfg.student.pad_multiple
        ).to(device)
        target = collate(
            [targets[i] for i in target_batches[s]], tokenizer.pad_token_id, cfg.student.pad_multiple, with_labels=False
        ).to(device)
        t0 = time.perf_counter()
        with autocast:
            losses, _ = student(source, target, 0.1)
            loss = sum(losses.values())
        sync(device)
        t1 = time.perf_counter()
        loss.backward()
        sync(device)
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        t3 = time.perf_counter()
        phases["forward"].append(t1 - t0)
        phases["backward"].append(t2 - t1)
        phases["clip+optimizer"].append(t3 - t2)

    for s in range(a.warmup):
        step(s)
    for v in phases.values():
        v.clear()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for s in range(a.steps):
            step(a.warmup + s)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=30)
    (Path(a.workdir) / "profile-prada-step.txt").write_text(table)
    print(table, file=sys.stderr)
    return {
        "phases_s_median": {k: statistics.median(v) for k, v in phases.items()},
        "profile_table": str(Path(a.workdir) / "profile-prada-step.txt"),
    }


def worker_main(a: argparse.Namespace) -> None:
    from prada.train.host_memory import configure_host_memory

    kept = configure_host_memory(a.keep_freed_memory)  # this contender's process, before it allocates anything
    if split_contender(a.worker)[0] in ("prada", "ft-cot"):
        result = prada_worker(a, a.worker)
    elif a.worker in ("hf-trainer", "hf-trainer-grouped"):
        result = hf_trainer_worker(a, grouped=a.worker == "hf-trainer-grouped")
    elif a.worker == "profile":
        result = profile_worker(a)
    else:
        raise SystemExit(f"unknown worker {a.worker}")
    result["keep_freed_memory"] = kept
    result["peak_rss_gib"] = peak_rss_gib()
    result["peak_gpu_gib"] = peak_gpu_gib(pick_device())
    emit(result)


# --- the parent: data, matmul peak, one subprocess per contender, one JSON line ---------------------------


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    if a.worker:
        worker_main(a)
        return {}
    t_start = time.perf_counter()
    host_before = host_state()
    tmp = None
    if a.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="prada-bench-train-")
        a.workdir = tmp.name
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    # two source datasets of n_train items: at least one epoch of (warmup + steps) full batches
    n_train = max(16, a.batch * (a.warmup + a.steps))
    tokenizer = None
    if a.lengths == "spread":
        from prada.model_aliases import resolve_model
        from prada.train.backbones import load_tokenizer

        tokenizer = load_tokenizer(resolve_model(a.model))
    tag = f"{a.lengths}-seq{a.seq}-n{n_train}" + (f"-{Path(a.model).name}" if a.lengths == "spread" else "")
    if a.lengths == "ftcot12":
        if not Path(a.ftcot12_source).is_dir():
            raise SystemExit(f"--ftcot12-source {a.ftcot12_source}: no such folder (a copy of ../shared/data)")
        tag = "ftcot12"
    if a.data_folder:
        data = Path(a.data_folder).resolve()
    else:
        data = make_bench_data(
            work / f"data-{tag}",
            a.seq,
            n_train=n_train,
            lengths=a.lengths,
            tokenizer=tokenizer,
            ftcot12_source=Path(a.ftcot12_source),
        )
    device = pick_device()
    peak = matmul_peak_flops(a.dtype, device, seconds=1.0 if a.quick else 3.0)
    n_params = count_params(a.model)
    common = [
        "--model",
        a.model,
        "--batch",
        str(a.batch),
        "--seq",
        str(a.seq),
        "--dtype",
        a.dtype,
        "--steps",
        str(a.steps),
        "--warmup",
        str(a.warmup),
        "--workdir",
        str(work),
        "--data",
        str(data),
        "--lengths",
        a.lengths,
        "--target-batch",
        str(a.target_batch),
        "--adversary-layer",
        str(a.adversary_layer),
        "--target-domain",
        a.target_domain,
        "--keep-freed-memory",
        a.keep_freed_memory,
        *(["--data-folder", str(data)] if a.data_folder else []),
    ]
    names = [c.strip() for c in a.contenders.split(",") if c.strip()]
    for name in names:
        method, overrides = split_contender(name)
        if method not in CONTENDERS or (overrides and method not in ("prada", "ft-cot")):
            raise SystemExit(
                f"--contenders: unknown {name!r}; choose from {', '.join(CONTENDERS)} "
                "(prada and ft-cot also as METHOD@KEY=VALUE[@KEY=VALUE], a config override measured beside the method)"
            )
    # rounds alternate the order (A B C, C B A, ...) so that a machine drifting in speed biases no contender
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(a.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            print(f"[train_throughput] {name} (round {r + 1}/{a.rounds}) ...", file=sys.stderr, flush=True)
            extra = ["--patch", a.patch] if a.patch and name != "hf-trainer" else []
            res = run_worker(
                Path(__file__),
                [*common, *extra, "--round", str(r), "--worker", name],
                timeout=3600,
                log=work / f"worker-{name.replace('/', '_')}-r{r}.log",
            )
            runs[name].append(res)
            print(
                f"[train_throughput] {name}: {res['tokens_per_s']:.1f} tokens/s, median step {res['step_s_median']:.3f}s, "
                f"peak RSS {res['peak_rss_gib']:.2f} GiB",
                file=sys.stderr,
                flush=True,
            )
    results = {name: _pool(rs) for name, rs in runs.items()}
    if a.profile:
        results["profile"] = run_worker(
            Path(__file__), [*common, "--worker", "profile"], timeout=3600, log=work / "worker-profile.log"
        )
    peak2 = matmul_peak_flops(a.dtype, device, seconds=1.0 if a.quick else 3.0)  # again: a shared machine drifts
    peak = max(peak, peak2)

    def get(name, key):
        return results[name][key] if name in results else None

    def ratio(x, y):
        return x / y if x is not None and y else None

    prada_tps = get("prada", "tokens_per_s")
    flops = 6 * n_params * prada_tps if prada_tps else None
    out = {
        "benchmark": "train_throughput",
        "model": a.model,
        "dtype": a.dtype,
        "device": device.type,
        "machine": machine(),
        "batch": a.batch,
        "target_batch": a.target_batch or a.batch,
        "adversary_layer": a.adversary_layer,
        "seq": a.seq,
        "lengths": f"folder:{a.data_folder}" if a.data_folder else a.lengths,
        "target_domain": a.target_domain,
        "patch": a.patch or None,
        # PRADA_KEEP_FREED_MEMORY as each contender's process applied it (records before 2026-12-05: not applied)
        "keep_freed_memory": {k: v["keep_freed_memory"] for k, v in results.items() if "keep_freed_memory" in v},
        "warmup_steps": a.warmup,
        "measured_steps": a.steps,
        "rounds": a.rounds,
        "quick": a.quick,
        "params": n_params,
        "prada_tokens_per_s": prada_tps,
        "ftcot_tokens_per_s": get("ft-cot", "tokens_per_s"),
        "hf_trainer_tokens_per_s": get("hf-trainer", "tokens_per_s"),
        "hf_trainer_grouped_tokens_per_s": get("hf-trainer-grouped", "tokens_per_s"),
        "supervised_tokens_per_s": {
            k: v["supervised_tokens_per_s"] for k, v in results.items() if "supervised_tokens_per_s" in v
        },
        "pad_fraction": {k: round(v["pad_fraction"], 4) for k, v in results.items() if "pad_fraction" in v},
        "prada_vs_hf_trainer": ratio(prada_tps, get("hf-trainer", "tokens_per_s")),
        "ftcot_vs_hf_trainer": ratio(get("ft-cot", "tokens_per_s"), get("hf-trainer", "tokens_per_s")),
        "prada_vs_hf_trainer_grouped": ratio(prada_tps, get("hf-trainer-grouped", "tokens_per_s")),
        "ftcot_vs_hf_trainer_grouped": ratio(get("ft-cot", "tokens_per_s"), get("hf-trainer-grouped", "tokens_per_s")),
        "prada_vs_ftcot_step_time": ratio(get("prada", "step_s_median"), get("ft-cot", "step_s_median")),
        # positions the adversary's target batches add to the source batch's: prada's step does about
        # this much more backbone work than ft-cot's, so the step-time ratio cannot fall far below 1 + it
        "prada_target_token_fraction": get("prada", "target_token_fraction"),
        # ... times the share of the decoder layers the target pass runs (all of them at the top layer)
        "prada_target_work_fraction": (
            get("prada", "target_token_fraction") * target_layer_share(a.model, a.adversary_layer)
            if get("prada", "target_token_fraction") is not None
            else None
        ),
        "step_s_median": {k: v["step_s_median"] for k, v in results.items() if "step_s_median" in v},
        "peak_rss_gib": get("prada", "peak_rss_gib"),
        "peak_rss_gib_by_contender": {k: round(v["peak_rss_gib"], 3) for k, v in results.items()},
        "peak_gpu_gib_by_contender": {k: v.get("peak_gpu_gib") for k, v in results.items()}
        if device.type == "cuda"
        else None,
        "matmul_peak_tflops": peak / 1e12,
        "prada_tflops": flops / 1e12 if flops else None,
        "flop_fraction_of_peak": flops / peak if flops else None,
        "hf_trainer_optimizer": get("hf-trainer", "optimizer"),
        "profile_phases_s": get("profile", "phases_s_median"),
        # each METHOD@OVERRIDE contender against METHOD in the same run: tokens/s ratio (>1: the override is faster)
        "variants": {
            name: {
                "tokens_per_s": results[name]["tokens_per_s"],
                "step_s_median": results[name]["step_s_median"],
                "vs_base_tokens_per_s": ratio(
                    results[name]["tokens_per_s"], get(split_contender(name)[0], "tokens_per_s")
                ),
                "peak_rss_gib": round(results[name]["peak_rss_gib"], 3),
            }
            for name in names
            if split_contender(name)[1]
        }
        or None,
        "wall_s": time.perf_counter() - t_start,
        "host_before": host_before,
        "host_after": host_state(),
    }
    print_last_line(out)
    if tmp is not None:
        tmp.cleanup()
    return out


if __name__ == "__main__":
    main()
