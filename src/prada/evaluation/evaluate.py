"""`prada eval`: generate for each test question, extract, score, write eval.json + predictions.jsonl.

Finished predictions are appended to a cache as they come, so a killed evaluation resumes where it stopped.
A cache entry counts only for the prompt it answered (its hash is stored with it) and the weights on disk
(their sizes and times name the cache file); prompts are cut to `student.max_length - 1` tokens, as in training.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from prada.config import RunConfig
from prada.data.schema import Example, read_examples
from prada.distill.format import ANSWER_SEPARATOR, format_input, format_target
from prada.errors import PradaError
from prada.evaluation.extract import DEFAULT_CHOICES
from prada.evaluation.generate import generate_texts
from prada.evaluation.metrics import accuracy, summarize, wilson_ci
from prada.evaluation.scorers import SCORERS, score_output
from prada.io import append_jsonl, atomic_write_json, atomic_write_jsonl, folder_lock, read_jsonl_tolerant
from prada.methods.registry import method_spec
from prada.progress import hidden
from prada.run_dir import (
    EVAL,
    EVAL_CACHE,
    GENERATION,
    PREDICTIONS,
    autocast_dtype,
    default_device,
    finished_run_config,
    resolve_switches,
    weights_fingerprint,
)


def load_test_sets(cfg: RunConfig, data: str | None, split: str) -> dict[str, list[Example]]:
    """The run's configured test sets, or those of a DATA_DIR / a single JSONL file."""
    if data is None:
        from prada.distill.dataset import load_distillation_set

        return load_distillation_set(cfg.data, cfg.seed).test_sets
    path = Path(data)
    if path.is_file():
        sets: dict[str, list[Example]] = {}
        for ex in read_examples(path):
            sets.setdefault(ex.dataset, []).append(ex)
        return sets
    if path.is_dir():
        sets = {
            sub.name: read_examples(sub / f"{split}.jsonl")
            for sub in sorted(path.iterdir())
            if (sub / f"{split}.jsonl").exists()
        }
        if sets:
            return sets
    raise PradaError(f"--data {data}: expected a JSONL file or a folder with <dataset>/{split}.jsonl files")


def evaluate_run(
    run_dir: Path, data: str | None = None, split: str = "test", out: str | None = None, progress: bool = True
) -> tuple[dict, Path]:
    """Evaluate a trained run; returns (eval result, path of eval.json). The run folder is locked meanwhile."""
    with folder_lock(run_dir, f"prada eval --run {run_dir}", create=False):
        return _evaluate_run(Path(run_dir), data, split, out, progress)


def _evaluate_run(run_dir: Path, data: str | None, split: str, out: str | None, progress: bool) -> tuple[dict, Path]:
    from prada.train.student import load_student

    cfg = finished_run_config(run_dir)
    from prada.distill.dataset import prepare_data

    prepare_data(cfg.data)  # the data step (the run's data folder; built once if missing), then read only
    tests = load_test_sets(cfg, data, split)
    out_path = Path(out) if out else run_dir / EVAL
    if not method_spec(cfg.method).model:  # prior: no model, the label prior answers
        outputs = prior_outputs(cfg, tests)
        result, predictions = score_outputs(cfg, tests, outputs, {}, 0)
        return _write(result, predictions, out_path, out), out_path
    student, tokenizer = load_student(run_dir, cfg)
    budget = generation_budget(cfg, tokenizer)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = default_device()
    student.to(device)
    dtype = autocast_dtype(cfg.train.precision)
    switches = resolve_switches(cfg, device)
    style = method_spec(cfg.method).prompt_style

    limit = cfg.student.max_length - 1  # the prompt tokens training kept (collate.build_train_items)
    prompts = {(ds, ex.id): format_input(ex.question, style) for ds, exs in tests.items() for ex in exs}
    budget = fit_context(
        budget, student.lm.config, tokenizer, list(prompts.values()), limit, student.num_virtual_tokens
    )
    hashes = {k: hashlib.sha256(p.encode("utf-8")).hexdigest()[:16] for k, p in prompts.items()}
    # the output path relative to the run: a moved or copied run folder keeps its cache
    where = os.path.relpath(out_path.resolve(), run_dir.resolve())
    key = [str(data), split, budget, where, limit, weights_fingerprint(run_dir)]
    cache_path = (
        _cache_folder(run_dir, out_path, out) / f"{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]}.jsonl"
    )
    rows = [r for r in read_jsonl_tolerant(cache_path) if _cached_answer(r, hashes)]
    done = {(r["dataset"], r["id"]): r["output"] for r in rows}
    truncated = {(r["dataset"], r["id"]): bool(r.get("truncated")) for r in rows}

    todo = [(ds, ex) for ds, exs in tests.items() for ex in exs if (ds, ex.id) not in done]
    bar = tqdm(
        total=sum(len(v) for v in tests.values()),
        initial=sum(len(v) for v in tests.values()) - len(todo),
        desc="eval",
        disable=hidden(progress),
    )

    def record(indices: list[int], texts: list[str], hit_budget: list[bool]) -> None:
        for i, text, cut in zip(indices, texts, hit_budget):
            ds, ex = todo[i]
            done[(ds, ex.id)], truncated[(ds, ex.id)] = text, cut
            row = {"dataset": ds, "id": ex.id, "prompt": hashes[(ds, ex.id)], "output": text, "truncated": cut}
            append_jsonl(cache_path, row)
        bar.update(len(indices))

    cost: dict = {}
    if todo:
        t0 = time.perf_counter()
        generate_texts(
            student,
            tokenizer,
            [prompts[(ds, ex.id)] for ds, ex in todo],
            budget,
            cfg.eval.batch_size,
            device,
            dtype,
            on_finish=record,
            weight_first=switches["weight_first_linears"],
            max_prompt_tokens=limit,
            stats=cost,
            refill_after=cfg.eval.refill_after,
        )
        cost["seconds"] = round(time.perf_counter() - t0, 2)
    bar.close()

    result, predictions = score_outputs(cfg, tests, done, truncated, budget)
    for ds, n in prompts_over(tokenizer, prompts, limit).items():
        result["datasets"][ds]["prompt_truncated"] = n
    result["switches"] = {"weight_first_linears": switches["weight_first_linears"]}  # which decoding path ran
    written = _write(result, predictions, out_path, out)
    # the cost of this call apart from eval.json, which stays byte-equal however often a run is resumed
    atomic_write_json(_beside(out_path, out, GENERATION), generation_cost(cost, len(done) - len(todo)))
    return written, out_path


def generation_cost(stats: dict, cached: int) -> dict:
    """What this call's decoding cost (items answered from the cache cost nothing and are counted apart)."""
    rows = stats.get("rows", 0)
    per_item = {f"{k}_per_item": round(stats[k] / rows, 1) for k in ("prompt_tokens", "new_tokens")} if rows else {}
    rate = {"new_tokens_per_s": round(stats["new_tokens"] / stats["seconds"], 1)} if stats.get("seconds") else {}
    return {"items_generated": rows, "items_cached": cached, **stats, **per_item, **rate}


def _cache_folder(run_dir: Path, out_path: Path, out: str | None) -> Path:
    """RUN_DIR/.eval_cache; for a run folder prada cannot write in (read-only, someone else's) with --out
    elsewhere, a .eval_cache beside that file, and without --out one clear error before any generation."""
    folder = run_dir / EVAL_CACHE
    try:
        folder.mkdir(exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-")  # root passes os.access on a read-only mount
        os.close(fd)
        os.unlink(probe)
        return folder
    except OSError as e:
        if out is None:
            raise PradaError(
                f"--run {run_dir}: cannot write there ({e.strerror}); give --out FILE in a folder you can write"
            ) from None
        return out_path.parent / EVAL_CACHE


def _cached_answer(row: dict, hashes: dict[tuple[str, str], str]) -> bool:
    """A cache line that answers the current prompt of its item (a damaged or stale line is redone)."""
    ok = all(isinstance(row.get(k), str) for k in ("dataset", "id", "output", "prompt"))
    return ok and hashes.get((row["dataset"], row["id"])) == row["prompt"]


def prompts_over(tokenizer, prompts: dict[tuple[str, str], str], limit: int) -> dict[str, int]:
    """Per dataset: prompts longer than `limit` tokens, which generation cut to their first `limit`."""
    counts: dict[str, int] = {}
    for (ds, _), prompt in prompts.items():
        # a prompt has at most its UTF-8 bytes plus two special tokens: only longer ones need tokenising
        long = len(prompt.encode("utf-8")) + 2 > limit and len(tokenizer(prompt)["input_ids"]) > limit
        counts[ds] = counts.get(ds, 0) + int(long)
    return counts


def _beside(out_path: Path, out: str | None, name: str) -> Path:
    """A file that goes with eval.json: RUN_DIR/name, or NAME.<name> beside `--out NAME.json`."""
    return out_path.with_name(name) if out is None else out_path.with_suffix("." + name)


def _write(result: dict, predictions: list[dict], out_path: Path, out: str | None) -> dict:
    atomic_write_jsonl(_beside(out_path, out, PREDICTIONS), predictions)
    atomic_write_json(out_path, result)
    return result


BUDGET_FACTOR, BUDGET_QUANTILE, BUDGET_MULTIPLE = 1.3, 0.99, 16


def generation_budget(cfg: RunConfig, tokenizer) -> int:
    """`eval.max_new_tokens`, or (0: auto) 1.3x the 99th percentile of the training targets' token lengths.

    A budget below what the teacher writes cuts a faithful student before its `-->` and lets the
    fallback rule decide the score; 1.3x the p99 leaves room for a student a little wordier than its teacher.
    """
    if cfg.eval.max_new_tokens:
        return cfg.eval.max_new_tokens
    return data_budget(target_token_lengths(cfg, tokenizer))


def fit_context(budget: int, config, tokenizer, prompts: list[str], prompt_limit: int, virtual_tokens: int = 0) -> int:
    """The budget, cut so that the virtual prompt, the longest (cut) prompt and it fit the model's positions."""
    context = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if not context or not prompts:
        return budget
    longest = min(prompt_limit, max(len(ids) for ids in tokenizer(prompts, add_special_tokens=True)["input_ids"]))
    return max(1, min(budget, int(context) - virtual_tokens - longest))


def data_budget(lengths: list[int]) -> int:
    if not lengths:
        return 128
    p99 = float(np.quantile(lengths, BUDGET_QUANTILE))
    return int(math.ceil(BUDGET_FACTOR * p99 / BUDGET_MULTIPLE) * BUDGET_MULTIPLE)


def target_token_lengths(cfg: RunConfig, tokenizer) -> list[int]:
    """Token lengths (EOS included) of every training target of the run's source data, as the student reads them."""
    from prada.distill.dataset import load_distillation_set

    data = load_distillation_set(cfg.data, cfg.seed)
    texts = [
        format_target(r.text, ex.answer if r.correct else r.answer)
        for ex in data.source_train
        for r in ex.rationales
        if r.correct or not cfg.data.only_correct
    ]
    if not texts:
        return []
    return [len(ids) + 1 for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def prior_outputs(cfg: RunConfig, tests: dict[str, list[Example]]) -> dict[tuple[str, str], str]:
    """The `prior` baseline's output for every test item: ` --> ` + the dataset's most frequent train answer.

    Choice datasets without a train split answer a seeded uniform draw over their choices (chance).
    """
    from prada.distill.dataset import answer_priors

    priors = answer_priors(cfg.data)
    rng = random.Random(cfg.seed)
    outputs = {}
    for ds, exs in tests.items():
        for ex in exs:
            answer = priors.get(ds)
            if answer is None and ex.answer_type == "choice":
                answer = rng.choice(ex.choices or DEFAULT_CHOICES)
            outputs[(ds, ex.id)] = f" {ANSWER_SEPARATOR} {answer}" if answer is not None else ""
    return outputs


def score_outputs(
    cfg: RunConfig,
    tests: dict[str, list[Example]],
    outputs: dict[tuple[str, str], str],
    truncated: dict[tuple[str, str], bool],
    budget: int,
) -> tuple[dict, list[dict]]:
    """eval.json's result and predictions.jsonl's rows, under `eval.scorer` (both scorers' accuracy are kept)."""
    scorer = cfg.eval.scorer
    predictions, per_dataset = [], {}
    for ds, exs in tests.items():
        flags, by_scorer = [], {name: 0 for name in SCORERS}
        arrows = cut = formatted = 0
        for ex in exs:
            text = outputs[(ds, ex.id)]
            scores = {name: score_output(text, name, ds, ex.answer_type, ex.answer, ex.choices) for name in SCORERS}
            chosen = scores[scorer]
            flags.append(chosen.correct)
            for name, sc in scores.items():
                by_scorer[name] += sc.correct
            arrows += ANSWER_SEPARATOR in text
            cut += truncated.get((ds, ex.id), False)
            formatted += chosen.prediction is not None
            predictions.append(
                {
                    "dataset": ds,
                    "id": ex.id,
                    "domain": ex.domain,
                    "question": ex.question,
                    "output": text,
                    "prediction": chosen.prediction,
                    "answer": ex.answer,
                    "correct": chosen.correct,
                    "truncated": truncated.get((ds, ex.id), False),
                }
            )
        n = len(exs)
        lo, hi = wilson_ci(sum(flags), n)
        per_dataset[ds] = {
            "domain": exs[0].domain,
            "n": n,
            "accuracy": accuracy(flags),
            "ci": [round(lo, 2), round(hi, 2)],
            "arrow_rate": round(100.0 * arrows / n, 2) if n else 0.0,
            "truncated_rate": round(100.0 * cut / n, 2) if n else 0.0,
            "format_rate": round(100.0 * formatted / n, 2) if n else 0.0,
            "accuracy_by_scorer": {name: round(100.0 * k / n, 2) if n else 0.0 for name, k in by_scorer.items()},
        }
    targets = list(cfg.data.target_domains)
    sources = list(cfg.data.source_domains) or sorted({d["domain"] for d in per_dataset.values()} - set(targets))
    result = {
        "method": cfg.method,
        "scorer": scorer,
        "max_new_tokens": budget,
        "datasets": per_dataset,
        **summarize(per_dataset, sources, targets),
    }
    return result, predictions
