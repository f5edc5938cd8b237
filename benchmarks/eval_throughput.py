"""Generation throughput: prada's batched greedy generation vs per-example `model.generate`, same predictions.

Both sides decode the same prompts (synthetic-suite test questions in the student's `{question} ###`
format) with the same model, dtype and max_new_tokens, greedily:

- `prada`: `prada.evaluation.generate.greedy_generate` on a Student wrapping the model, as `prada
  eval` runs it: --batch rows decoding at once (left padding, KV cache), finished rows' slots
  refilled with the next prompts (longest first) once --refill-after rows have ended.
- `naive`: `model.generate(do_sample=False)` one prompt at a time (batch 1, KV cache).
- `batched`: `model.generate(do_sample=False)` on left-padded batches of --batch prompts (sorted by
  length, so a batch pads little), the strong baseline: what a user of plain transformers would
  write. A batch runs until its longest row ends.

Generated tokens (EOS excluded) per second for each, and whether the token ids agree row by row.
Prints one JSON object as the last line.

    python benchmarks/eval_throughput.py                 # SmolLM2-135M, 32 prompts, batch 32, 128 new tokens
    python benchmarks/eval_throughput.py --quick         # about a minute on a 2-core CPU
    python benchmarks/eval_throughput.py --profile       # + torch.profiler table of the generation loop
    python benchmarks/eval_throughput.py --prompts 128 --no-naive   # more questions than rows, as `prada eval` meets them
    python benchmarks/eval_throughput.py --model runs/.../model --questions data/study2/dev-real.jsonl --no-naive
                                                    # a trained student on real dev questions: rows end at EOS
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
    BENCH_DATASETS,
    add_switch,
    host_state,
    machine,
    make_bench_data,
    peak_gpu_gib,
    peak_rss_gib,
    pick_device,
    print_last_line,
    resolve_dtype,
    sync,
    torch_dtype,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="smollm2-135m", help="prada alias (smollm2-135m, tiny-random) or HF folder/id")
    p.add_argument(
        "--batch", type=int, default=None, help="rows decoding at once (default: prada eval's eval.batch_size, 32)"
    )
    p.add_argument(
        "--seq",
        type=int,
        default=256,
        help="token budget of a row, prompt + generation; prompts are cut to seq - max_new_tokens",
    )
    p.add_argument("--max-new-tokens", type=int, default=None, help="default seq // 2 (128); --quick: 32")
    p.add_argument(
        "--prompts", type=int, default=None, help="questions to answer (default 32; --quick: 8; --questions: all)"
    )
    p.add_argument(
        "--questions",
        default=None,
        help="a JSONL file of questions (prada's data format) instead of synthetic ones: the questions a trained "
        "student meets in `prada eval`, whose rows end at different lengths (use dev questions, not a test set)",
    )
    p.add_argument("--datasets", default="", help="with --questions: comma list of datasets to keep")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bf16", "fp32"],
        help="auto: bf16 where it pays (GPUs, CPUs with AMX), else fp32, as train.precision=auto",
    )
    add_switch(
        p,
        "--weight-first",
        "prada's eval.weight_first_linears, resolved as `prada eval` resolves it (auto: on for a CPU in fp32)",
    )
    p.add_argument(
        "--no-naive",
        action="store_true",
        help="skip per-example generate (many minutes at 100+ prompts); prada's tokens are checked against batched generate's",
    )
    p.add_argument(
        "--refill-after",
        type=int,
        default=None,
        help="prada's eval.refill_after: finished rows dropped and refilled in groups this large (default: the config's)",
    )
    add_switch(
        p,
        "--keep-freed-memory",
        "PRADA_KEEP_FREED_MEMORY for this process, as `prada eval` and `prada run` apply it (both contenders)",
    )
    p.add_argument("--quick", action="store_true", help="fewer prompts and tokens: about a minute on a 2-core CPU")
    p.add_argument("--profile", action="store_true", help="also profile one prada generation batch (torch.profiler)")
    p.add_argument("--workdir", default=None, help="keep the data and the profile here (default: a temp folder)")
    a = p.parse_args(argv)
    a.max_new_tokens = a.max_new_tokens or (32 if a.quick else a.seq // 2)
    a.prompts = a.prompts or (0 if a.questions else 8 if a.quick else 32)
    if a.datasets and not a.questions:
        p.error("--datasets needs --questions")
    from prada.config import EvalConfig

    a.batch = EvalConfig().batch_size if a.batch is None else a.batch
    a.refill_after = EvalConfig().refill_after if a.refill_after is None else a.refill_after
    if a.refill_after < 1:
        p.error("--refill-after must be at least 1")
    a.dtype = resolve_dtype(a.dtype)
    if a.max_new_tokens >= a.seq:
        p.error("--max-new-tokens must be below --seq")
    return a


def load_prompts(a: argparse.Namespace, tokenizer, workdir: Path) -> list[list[int]]:
    """Token ids of `{question} ###` for --prompts questions: from --questions in file order, else synthetic
    test questions round-robin over the benchmark datasets."""
    from prada.data.schema import read_examples
    from prada.distill.collate import tokenize_prompt

    if a.questions:
        keep = set(filter(None, a.datasets.split(",")))
        examples = [ex for ex in read_examples(a.questions) if not keep or ex.dataset in keep]
        if not examples:
            raise SystemExit(f"{a.questions}: no question of datasets {sorted(keep)}")
        questions = [ex.question for ex in examples[: a.prompts or None]]
    else:
        data = make_bench_data(workdir / "data-eval", seq=32, n_train=16, n_test=max(8, a.prompts))
        per_ds = [read_examples(data / ds / "test.jsonl") for ds in BENCH_DATASETS]
        questions = [per_ds[i % len(per_ds)][i // len(per_ds)].question for i in range(a.prompts)]
    limit = a.seq - a.max_new_tokens
    return [tokenize_prompt(tokenizer, q)[-limit:] for q in questions]


def prada_generate(student, prompts: list[list[int]], tokenizer, a, device) -> list[list[int]]:
    """`prada eval`'s generation: greedy_generate with --batch slots, refilled as rows finish; outputs in prompt order."""
    from prada.evaluation.generate import greedy_generate

    autocast = torch_dtype(a.dtype) if a.dtype == "bf16" else None
    return greedy_generate(
        student,
        prompts,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
        a.max_new_tokens,
        a.batch,
        device,
        autocast,
        weight_first=weight_first_on(a, device),
        refill_after=a.refill_after,
    )


def weight_first_on(a: argparse.Namespace, device) -> bool:
    """--weight-first as `prada eval` resolves eval.weight_first_linears for this dtype and device.

    Before this was passed, the `prada` contender decoded without it wherever `prada eval` uses it
    (a CPU in fp32), so those records understate `prada eval` (docs/scale.md, Zen 5 section, says which).
    """
    from prada.config import RunConfig
    from prada.run_dir import resolve_switches

    cfg = RunConfig()
    cfg.train.precision, cfg.eval.weight_first_linears = a.dtype, a.weight_first
    return resolve_switches(cfg, device)["weight_first_linears"]


def _greedy_config(tokenizer, a):
    """transformers' greedy decoding with the KV cache, --max-new-tokens, stopping at EOS."""
    from transformers import GenerationConfig

    return GenerationConfig(
        max_new_tokens=a.max_new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


@torch.no_grad()
def naive_generate(lm, prompts: list[list[int]], tokenizer, a, device) -> list[list[int]]:
    """transformers' generate, one prompt at a time; new tokens up to (not including) the first EOS."""
    config = _greedy_config(tokenizer, a)
    outputs = []
    for ids in prompts:
        x = torch.tensor([ids], device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
            out = lm.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=config)
        new = out[0, len(ids) :].tolist()
        outputs.append(new[: new.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in new else new)
    return outputs


@torch.no_grad()
def batched_generate(lm, prompts: list[list[int]], tokenizer, a, device) -> list[list[int]]:
    """transformers' generate on left-padded batches of --batch prompts, longest first; outputs in prompt order."""
    config = _greedy_config(tokenizer, a)
    outputs: list[list[int]] = [[] for _ in prompts]
    for rows in _length_sorted_batches(prompts, a.batch):
        T = max(len(prompts[i]) for i in rows)
        x = torch.full((len(rows), T), tokenizer.pad_token_id, dtype=torch.long, device=device)
        mask = torch.zeros_like(x)
        for b, i in enumerate(rows):
            x[b, T - len(prompts[i]) :] = torch.tensor(prompts[i], device=device)
            mask[b, T - len(prompts[i]) :] = 1
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
            out = lm.generate(input_ids=x, attention_mask=mask, generation_config=config)
        for b, i in enumerate(rows):
            new = out[b, T:].tolist()
            outputs[i] = new[: new.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in new else new
    return outputs


def _length_sorted_batches(prompts: list[list[int]], batch: int) -> list[list[int]]:
    """`batched_generate`'s batches: prompt indices, longest prompts first, `batch` at a time."""
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    return [order[start : start + batch] for start in range(0, len(order), batch)]


def _row_steps(outputs: list[list[int]], prompts: list[list[int]], batch: int, budget: int) -> int:
    """Rows x decoding steps of `batched_generate`'s batches: each runs until its longest row ends."""
    return sum(
        len(rows) * max(min(len(outputs[i]) + 1, budget) for i in rows)  # + the EOS step, up to the budget
        for rows in _length_sorted_batches(prompts, batch)
    )


def profile_generation(student, prompts, tokenizer, a, device, workdir: Path) -> dict:
    """torch.profiler over one prada generation batch; the table goes to workdir, the top rows to stderr."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sub = prompts[: a.batch]
    with profile(activities=activities) as prof:
        prada_generate(student, sub, tokenizer, a, device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=30)
    path = workdir / "profile-generation.txt"
    path.write_text(table)
    print(table, file=sys.stderr)
    return {"profile_table": str(path)}


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    from prada.train.host_memory import configure_host_memory

    kept = configure_host_memory(a.keep_freed_memory)  # the process's allocator: every contender runs under it
    t_start = time.perf_counter()
    host_before = host_state()
    tmp = None
    if a.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="prada-bench-eval-")
        a.workdir = tmp.name
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)

    from prada.model_aliases import resolve_model
    from prada.train.backbones import load_causal_lm, load_tokenizer
    from prada.train.student import Student

    device = pick_device()
    path = resolve_model(a.model)
    tokenizer = load_tokenizer(path)
    lm = load_causal_lm(path).to(device).eval()  # fp32 weights + autocast, as `prada eval` loads a student
    student = Student(lm).eval()
    prompts = load_prompts(a, tokenizer, work)

    # --- warm-up each path on its own shapes (allocator, BLAS threads, GPU kernels), then time each once.
    # A fresh process's first pass over new memory is several times slower on this VM (16 s vs 3 s seen).
    saved, a.max_new_tokens = a.max_new_tokens, min(8, a.max_new_tokens)
    prada_generate(student, prompts[: a.batch], tokenizer, a, device)
    if not a.no_naive:
        naive_generate(lm, prompts[:1], tokenizer, a, device)
    batched_generate(lm, prompts[: a.batch], tokenizer, a, device)
    a.max_new_tokens = saved

    sync(device)
    t0 = time.perf_counter()
    ours = prada_generate(student, prompts, tokenizer, a, device)
    sync(device)
    t_prada = time.perf_counter() - t0
    theirs, t_naive = None, None
    if not a.no_naive:
        t0 = time.perf_counter()
        theirs = naive_generate(lm, prompts, tokenizer, a, device)
        sync(device)
        t_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = batched_generate(lm, prompts, tokenizer, a, device)
    sync(device)
    t_batched = time.perf_counter() - t0
    batched_differ = None if theirs is None else [i for i, (x, y) in enumerate(zip(batched, theirs)) if x != y]
    reference = "batched" if theirs is None else "naive"
    theirs = batched if theirs is None else theirs  # prada's tokens are checked against this one
    n_batched = sum(map(len, batched))

    differ = [i for i, (x, y) in enumerate(zip(ours, theirs)) if x != y]
    n_ours, n_theirs = sum(map(len, ours)), sum(map(len, theirs))
    first_divergence = []
    for i in differ[:5]:
        x, y = ours[i], theirs[i]
        k = next((j for j in range(min(len(x), len(y))) if x[j] != y[j]), min(len(x), len(y)))
        first_divergence.append({"prompt": i, "at_token": k, "prada_len": len(x), f"{reference}_len": len(y)})
    profile = profile_generation(student, prompts, tokenizer, a, device, work) if a.profile else None
    out = {
        "benchmark": "eval_throughput",
        "model": a.model,
        "dtype": a.dtype,
        "weight_first_linears": weight_first_on(a, device),
        "device": device.type,
        "machine": machine(),
        "prompts": len(prompts),
        "questions": a.questions and {"file": a.questions, "datasets": a.datasets or "all"},
        "batch": a.batch,
        "refill_after": a.refill_after,
        "keep_freed_memory": kept,
        "max_new_tokens": a.max_new_tokens,
        "prompt_tokens_median": statistics.median(map(len, prompts)),
        "quick": a.quick,
        "prada_eval_tokens_per_s": n_ours / t_prada,
        "naive_tokens_per_s": t_naive and n_theirs / t_naive,
        "eval_vs_naive": t_naive and (n_ours / t_prada) / (n_theirs / t_naive),
        "batched_generate_tokens_per_s": n_batched / t_batched,
        "eval_vs_batched_generate": (n_ours / t_prada) / (n_batched / t_batched),
        "batched_generate_s": t_batched,
        "batched_same_predictions_as_naive": None if batched_differ is None else not batched_differ,
        "batched_n_different": None if batched_differ is None else len(batched_differ),
        "prada_s": t_prada,
        "naive_s": t_naive,
        "generated_tokens": n_ours,
        "naive_generated_tokens": t_naive and n_theirs,
        "rows_stopped_by_eos": sum(len(o) < a.max_new_tokens for o in ours),
        # positions batched generate decodes: each batch runs to its longest row (prada refills ended rows' slots)
        "batched_generate_row_steps": _row_steps(batched, prompts, a.batch, a.max_new_tokens),
        "same_predictions": not differ,  # prada's token ids equal the reference's for every prompt
        "same_predictions_reference": reference,
        "n_different": len(differ),
        "first_divergence": first_divergence,
        "peak_rss_gib": peak_rss_gib(),
        "peak_gpu_gib": peak_gpu_gib(device),
        "profile": profile,
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
