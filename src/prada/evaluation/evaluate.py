"""`prada eval`: generate for each test question, extract, score, write eval.json + predictions.jsonl.

Finished predictions are appended to a cache as they come, so a killed evaluation resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from prada.config import RunConfig
from prada.data.schema import Example, read_examples
from prada.distill.format import format_input
from prada.errors import PradaError
from prada.evaluation.extract import extract_answer, is_correct
from prada.evaluation.generate import generate_texts
from prada.evaluation.metrics import accuracy, summarize
from prada.io import append_jsonl, atomic_write_json, atomic_write_jsonl, read_jsonl_tolerant
from prada.methods.registry import method_spec


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
    """Evaluate a trained run; returns (eval result, path of eval.json)."""
    from prada.train.loop import bf16_supported, finished_run_config
    from prada.train.student import load_student

    run_dir = Path(run_dir)
    cfg = finished_run_config(run_dir)
    tests = load_test_sets(cfg, data, split)
    student, tokenizer = load_student(run_dir, cfg)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    student.to(device)
    precision = cfg.train.precision
    dtype = torch.bfloat16 if precision == "bf16" or (precision == "auto" and bf16_supported()) else None
    style = method_spec(cfg.method).prompt_style

    out_path = Path(out) if out else run_dir / "eval.json"
    key = hashlib.sha256(json.dumps([str(data), split, cfg.eval.max_new_tokens, str(out_path)]).encode()).hexdigest()[
        :12
    ]
    cache_path = run_dir / ".eval_cache" / f"{key}.jsonl"
    done = {(r["dataset"], r["id"]): r["output"] for r in read_jsonl_tolerant(cache_path)}

    todo = [(ds, ex) for ds, exs in tests.items() for ex in exs if (ds, ex.id) not in done]
    bar = tqdm(
        total=sum(len(v) for v in tests.values()),
        initial=sum(len(v) for v in tests.values()) - len(todo),
        desc="eval",
        disable=not progress,
    )

    def record(indices: list[int], texts: list[str]) -> None:
        for i, text in zip(indices, texts):
            ds, ex = todo[i]
            done[(ds, ex.id)] = text
            append_jsonl(cache_path, {"dataset": ds, "id": ex.id, "output": text})
        bar.update(len(indices))

    if todo:
        generate_texts(
            student,
            tokenizer,
            [format_input(ex.question, style) for _, ex in todo],
            cfg.eval.max_new_tokens,
            cfg.eval.batch_size,
            device,
            dtype,
            on_finish=record,
            weight_first=cfg.eval.weight_first_linears,
        )
    bar.close()

    predictions, per_dataset = [], {}
    for ds, exs in tests.items():
        flags = []
        for ex in exs:
            text = done[(ds, ex.id)]
            pred = extract_answer(text, ex.answer_type, ex.choices)
            ok = is_correct(pred, ex.answer, ex.answer_type)
            flags.append(ok)
            predictions.append(
                {
                    "dataset": ds,
                    "id": ex.id,
                    "domain": ex.domain,
                    "question": ex.question,
                    "output": text,
                    "prediction": pred,
                    "answer": ex.answer,
                    "correct": ok,
                }
            )
        per_dataset[ds] = {"domain": exs[0].domain, "n": len(exs), "accuracy": accuracy(flags)}
    targets = list(cfg.data.target_domains)
    sources = list(cfg.data.source_domains) or sorted({d["domain"] for d in per_dataset.values()} - set(targets))
    result = {"method": cfg.method, "datasets": per_dataset, **summarize(per_dataset, sources, targets)}
    atomic_write_jsonl(
        out_path.with_name("predictions.jsonl") if out is None else out_path.with_suffix(".predictions.jsonl"),
        predictions,
    )
    atomic_write_json(out_path, result)
    return result, out_path
