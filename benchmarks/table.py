"""Markdown tables from benchmark result lines (the JSON each script prints last), for the README and docs.

    python benchmarks/table.py benchmarks/results/issue23-quiet.jsonl

Every figure comes from the file; each table row names the run it came from (line number), the
machine's CPU flags and the load average before and after, so a table can be checked against its lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _f(x: float | None, digits: int = 1, suffix: str = "") -> str:
    return "—" if x is None else f"{x:.{digits}f}{suffix}"


def _host(d: dict) -> str:
    before, after = d.get("host_before"), d.get("host_after")
    if not before:
        return "not recorded"
    return (
        f"{' '.join(before['cpu_flags']) or 'no avx2'}; load {before['load_average'][0]} -> {after['load_average'][0]}"
    )


def train_rows(lines: list[tuple[int, dict]]) -> list[str]:
    out = [
        "| line | data | ft-cot (prada loop) | prada | Trainer, grouped | Trainer, random | ft-cot / grouped | prada / grouped | prada / ft-cot step | host |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, d in lines:
        if d["benchmark"] != "train_throughput" or not d.get("ftcot_tokens_per_s"):
            continue
        rounds = f", {d['rounds']} rounds" if d.get("rounds", 1) > 1 else ""
        data = f"{d['lengths']}, {d['measured_steps']} steps{rounds}, target batch {d['target_batch']}, {d['dtype']}"
        kept = set((d.get("keep_freed_memory") or {}).values())  # per contender; records before 2026-12-05: none
        if kept:
            data += ", allocator switch " + ("on" if kept == {True} else "off" if kept == {False} else "mixed")
        out.append(
            f"| {n} | {data} | {_f(d['ftcot_tokens_per_s'])} | {_f(d['prada_tokens_per_s'])} "
            f"| {_f(d.get('hf_trainer_grouped_tokens_per_s'))} | {_f(d.get('hf_trainer_tokens_per_s'))} "
            f"| {_f(d.get('ftcot_vs_hf_trainer_grouped'), 2, 'x')} | {_f(d.get('prada_vs_hf_trainer_grouped'), 2, 'x')} "
            f"| {_f(d.get('prada_vs_ftcot_step_time'), 2)} | {_host(d)} |"
        )
    return out


def variant_rows(lines: list[tuple[int, dict]]) -> list[str]:
    out = [
        "| line | contender | tokens/s | vs the method alone | median step s | peak RSS GiB |",
        "|---|---|---|---|---|---|",
    ]
    for n, d in lines:
        for name, v in (d.get("variants") or {}).items():
            out.append(
                f"| {n} | `{name}` | {_f(v['tokens_per_s'])} | {_f(v['vs_base_tokens_per_s'], 2, 'x')} "
                f"| {_f(v['step_s_median'], 2)} | {_f(v['peak_rss_gib'], 2)} |"
            )
    return out if len(out) > 2 else []


def eval_rows(lines: list[tuple[int, dict]]) -> list[str]:
    out = [
        "| line | prompts x new tokens, batch, dtype | prada eval | batched `generate` | per-example `generate` | prada / batched | same token ids | host |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, d in lines:
        if d["benchmark"] != "eval_throughput":
            continue
        if d.get("same_predictions_reference") == "batched":  # --no-naive: prada checked against batched generate
            same = (
                "yes (against batched)"
                if d["same_predictions"]
                else f"no ({d['n_different']} rows differ from batched)"
            )
        elif d["same_predictions"] and d.get("batched_same_predictions_as_naive"):
            same = "yes"
        else:
            same = f"no ({d['n_different']} prada, {d.get('batched_n_different')} batched rows differ)"
        # weight-first linears, where the record says (eval_throughput ran without them from bf97e5c to 34ef825)
        wf = {True: ", weight-first on", False: ", weight-first off"}.get(d.get("weight_first_linears"), "")
        if d.get("refill_after"):  # eval.refill_after; records before it refilled every slot at once
            wf += f", refill after {d['refill_after']}"
        if "keep_freed_memory" in d:  # PRADA_KEEP_FREED_MEMORY as the benchmark applied it (older records: not applied)
            wf += ", allocator switch " + ("on" if d["keep_freed_memory"] else "off")
        if d.get("questions"):  # --questions: a file's questions, usually with a trained run's model folder
            model = Path(d["model"])
            wf += f"; {Path(d['questions']['file']).name}, {model.parent.name if model.name == 'model' else model}"
        out.append(
            f"| {n} | {d['prompts']} x {d['max_new_tokens']}, {d['batch']}, {d['dtype']}{wf} | {_f(d['prada_eval_tokens_per_s'])} "
            f"| {_f(d['batched_generate_tokens_per_s'])} | {_f(d['naive_tokens_per_s'])} "
            f"| {_f(d['eval_vs_batched_generate'], 2, 'x')} | {same} | {_host(d)} |"
        )
    return out


def eval_precision_rows(lines: list[tuple[int, dict]]) -> list[str]:
    out = [
        "| line | run, questions | fp32 s / item | bf16 s / item | bf16 speed-up | new tokens / item (fp32, bf16) | same text | host |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, d in lines:
        if d["benchmark"] != "eval_precision":
            continue
        out.append(
            f"| {n} | `{Path(d['run']).name}`, {d['items']} of {Path(d['data']).name} | {_f(d['fp32_seconds_per_item'], 3)} "
            f"| {_f(d['bf16_seconds_per_item'], 3)} | {_f(d['bf16_vs_fp32_seconds_per_item'], 2, 'x')} "
            f"| {_f(d['fp32_new_tokens_per_item'])}, {_f(d['bf16_new_tokens_per_item'])} "
            f"| {d['same_outputs']} of {d['items']} | {_host(d)} |"
        )
    return out


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="a .jsonl file of benchmark result lines")
    a = p.parse_args(argv)
    lines = [(i, json.loads(t)) for i, t in enumerate(Path(a.results).read_text().splitlines(), 1) if t.strip()]
    machines = sorted({d["machine"] for _, d in lines})
    dtypes = sorted({d["dtype"] for _, d in lines if "dtype" in d})
    models = sorted({d["model"] for _, d in lines if "model" in d})
    parts = [f"From `{a.results}` ({'; '.join(machines)}; {', '.join(models)}, {' and '.join(dtypes)}):", ""]
    for rows in (train_rows(lines), variant_rows(lines), eval_rows(lines), eval_precision_rows(lines)):
        if len(rows) > 2:
            parts += [*rows, ""]
    text = "\n".join(parts)
    print(text)
    return text


if __name__ == "__main__":
    main()
