"""Domain mix and padding of training batches: length-sorted vs domain-stratified length buckets, side by side.

Tokenises the source items of one ftcot12 leave-one-domain-out fold with the student's tokenizer,
builds one epoch of batches both ways with the same seed, and prints per way: the majority-domain
share per batch (mean), the padding fraction (pad tokens / padded tokens, with the run's
pad_multiple; with train.split_by_length each batch's length groups), and rows per source domain seen in the first `--steps` batches. No model is run.

    python benchmarks/batch_mix.py --data ../shared/data            # ftcot12 fold target=symbolic, SmolLM2 tokenizer
    python benchmarks/batch_mix.py --quick                          # the synthetic suite, tiny-random tokenizer
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path


def measure(
    items, batch_size: int, seed: int, mix: bool, pad_multiple: int, steps: int, names: list[str], split: bool = False
) -> dict:
    from prada.distill.collate import epoch_batches, padded_length, split_by_length

    batches = [b for b in epoch_batches(items, batch_size, seed, 0, mix_domains=mix) if len(b) == batch_size]
    majority, real, padded = [], 0, 0
    for b in batches:
        counts = Counter(items[i].domain for i in b)
        majority.append(max(counts.values()) / len(b))
        lengths = [len(items[i].prompt_ids) + len(items[i].target_ids) for i in b]
        real += sum(lengths)
        groups = split_by_length(lengths, pad_multiple) if split else [list(range(len(b)))]
        padded += sum(padded_length(max(lengths[i] for i in g), pad_multiple) * len(g) for g in groups)
    first = Counter(names[items[i].domain] for b in batches[:steps] for i in b)
    return {
        "majority_domain_share": round(sum(majority) / len(majority), 3),
        "pad_fraction": round(1 - real / padded, 4),
        f"rows_per_domain_first_{steps}_steps": dict(sorted(first.items())),
        "batches": len(batches),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="", help="folder laid out like ../shared/data (ftcot12 source)")
    ap.add_argument("--target", default="symbolic")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--pad-multiple", type=int, default=16)
    ap.add_argument("--steps", type=int, default=28)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="synthetic suite + tiny-random tokenizer (seconds)")
    a = ap.parse_args()

    from prada.config import DataConfig
    from prada.distill.collate import build_train_items
    from prada.distill.dataset import load_distillation_set, prepare_data
    from prada.model_aliases import resolve_model
    from prada.train.backbones import load_tokenizer

    tmp = tempfile.mkdtemp()
    if a.quick:
        cfg = DataConfig(benchmark="synth", data_dir=str(Path(tmp) / "synth"), target_domains=["other"])
        model = "tiny-random"
    else:
        cfg = DataConfig(
            benchmark="ftcot12", data_dir=str(Path(tmp) / "ftcot12"), source=a.data, target_domains=[a.target]
        )
        model = a.model
    prepare_data(cfg)
    data = load_distillation_set(cfg)
    tokenizer = load_tokenizer(resolve_model(model), False)
    items = build_train_items(data.source_train, tokenizer, data.domains, a.max_length)
    out = {
        "benchmark": cfg.benchmark,
        "target": cfg.target_domains,
        "items": len(items),
        "batch_size": a.batch_size,
        "length_sorted": measure(items, a.batch_size, a.seed, False, a.pad_multiple, a.steps, data.domains),
        "stratified": measure(items, a.batch_size, a.seed, True, a.pad_multiple, a.steps, data.domains),
        "stratified_split_by_length": measure(
            items, a.batch_size, a.seed, True, a.pad_multiple, a.steps, data.domains, split=True
        ),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
