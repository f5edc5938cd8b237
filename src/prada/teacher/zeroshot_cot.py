"""`prada teach`: two-stage Zero-shot-CoT over DATA_DIR/<dataset>/train.jsonl, through the append-only cache.

Stage 1: `Q: {question}\\nA: Let's think step by step.` -> rationale (D samples at temperature T).
Stage 2: stage-1 prompt + " " + rationale + an answer trigger per answer type -> answer text,
always greedy, read with `extract_teacher_answer` and scored with `is_correct` against the gold.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from prada.data.schema import Example, Rationale, read_examples, write_examples
from prada.errors import DataError
from prada.io import atomic_write_json, folder_lock
from prada.progress import hidden
from prada.prompts import answer_trigger, zeroshot_cot_prompt
from prada.teacher.cache import TeacherCache, cache_path, sample_key
from prada.teacher.client import TeacherClient, TeacherError, make_client

log = logging.getLogger("prada.teacher")

STOP = ["\nQ:"]  # a base model that finishes its answer tends to start the next question


stage1_prompt = zeroshot_cot_prompt  # Zero-shot-CoT stage 1 (prada/prompts.py)


def stage2_prompt(example: Example, rationale: str) -> str:
    return (
        f"{stage1_prompt(example.question)} {rationale.strip()}{answer_trigger(example.answer_type, example.choices)}"
    )


@dataclass
class _Unit:
    """One (item, sample index) still to be asked."""

    dataset: str
    example: Example
    sample: int
    key: str

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.example.id} sample {self.sample}"


def _ask(
    client: TeacherClient, units: list[_Unit], temperature: float, max_rationale_tokens: int, max_answer_tokens: int
) -> list[dict]:
    """Both stages for a group of units; returns one cache record per unit."""
    from prada.answers import extract_teacher_answer

    prompts = [stage1_prompt(u.example.question) for u in units]
    if len(units) > 1 and len(set(prompts)) == 1:  # the samples of one question: one request with n=D
        rationales = client.complete_n(prompts[0], len(units), max_rationale_tokens, temperature, STOP)
    else:
        rationales = client.complete(prompts, max_rationale_tokens, temperature, STOP)
    _check_utf8(rationales, "stage 1")
    answers = client.complete(
        [stage2_prompt(u.example, r) for u, r in zip(units, rationales)], max_answer_tokens, 0.0, STOP
    )
    _check_utf8(answers, "stage 2")
    records = []
    for u, r, a in zip(units, rationales, answers):
        ex = u.example
        records.append(
            {
                "key": u.key,
                "dataset": u.dataset,
                "id": ex.id,
                "sample": u.sample,
                "temperature": temperature,
                "rationale": r.strip(),
                "answer_text": a,
                "answer": extract_teacher_answer(a, ex.answer_type, ex.choices),
            }
        )
    return records


def _check_utf8(replies: list[str], stage: str) -> None:
    """JSON can spell a lone surrogate ("\\ud800") that no UTF-8 file holds: such a reply is a failed
    sample (asked again by the next run), never a crash in the cache append."""
    for reply in replies:
        if not isinstance(reply, str):
            raise TeacherError(f"{stage} reply is not text ({type(reply).__name__})")
        try:
            reply.encode("utf-8")
        except UnicodeEncodeError as e:
            raise TeacherError(f"{stage} reply holds a character UTF-8 cannot encode ({e.reason})") from None


def _find_datasets(data_dir: Path, datasets: list[str] | None) -> list[str]:
    found = (
        sorted(
            p.name
            for p in data_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "train.jsonl").is_file()
        )
        if data_dir.is_dir()
        else []
    )
    if not datasets:
        if not found:
            raise DataError(
                "no <dataset>/train.jsonl under this folder (run `prada data build` or `prada data synth` first)",
                str(data_dir),
            )
        return found
    missing = [d for d in datasets if d not in found]
    if missing:
        raise DataError(
            f"no train.jsonl for {', '.join(missing)} (available: {', '.join(found) or 'none'})", str(data_dir)
        )
    return list(dict.fromkeys(datasets))


def _read_summary(path: Path) -> dict:
    if not path.is_file():
        return {"datasets": {}}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"not valid JSON ({e}); fix or delete it", str(path)) from None
    if not isinstance(summary, dict) or not isinstance(summary.setdefault("datasets", {}), dict):
        raise DataError('expected {"datasets": {KEY: {...}}}', str(path))
    return summary


def teach(
    data_dir: Path,
    teacher: str,
    samples: int = 1,
    temperature: float = 0.0,
    concurrency: int = 8,
    max_tries: int = 6,
    keep_incorrect: bool = False,
    datasets: list[str] | None = None,
    client: TeacherClient | None = None,
    *,
    skip_domains: tuple[str, ...] | list[str] = (),
    max_rationale_tokens: int = 256,
    max_answer_tokens: int = 32,
    progress: bool = True,
) -> dict:
    """Add `teacher`'s Zero-shot-CoT rationales to every DATA_DIR/<dataset>/train.jsonl item.

    Each (item, sample) is asked once across runs: finished samples are read from
    DATA_DIR/.teacher_cache/<teacher-slug>.jsonl, new ones are appended there as they finish.
    Then train.jsonl is rewritten atomically: this teacher's rationales are replaced by the cached
    ones (only correct ones unless `keep_incorrect`), other teachers' rationales are kept, and
    summary.json's `n_train_with_correct_rationale` is updated. Samples that still fail after
    `max_tries` tries are counted in `failed` (items) and asked again by the next run.
    `client` overrides the back-end built from `teacher` (then its own retry settings apply).
    Questions of `skip_domains` are not asked and keep their rationales: a run's target domains,
    whose training rationales are blanked before anything trains on them.

    Returns {"items", "skipped", "samples_done", "from_cache", "failed", "correct", "written", "failed_ids"}.
    """
    from prada.answers import is_correct

    data_dir = Path(data_dir)
    if samples < 1:
        raise TeacherError(f"samples must be >= 1, got {samples}", fatal=True)
    if temperature < 0:
        raise TeacherError(f"temperature must be >= 0, got {temperature}", fatal=True)
    if samples > 1 and temperature == 0:
        log.warning("samples=%d at temperature 0: greedy samples are usually identical", samples)
    names = _find_datasets(data_dir, datasets)
    by_dataset = {name: read_examples(data_dir / name / "train.jsonl") for name in names}

    with TeacherCache(cache_path(data_dir, teacher)) as cache:
        units, keys, from_cache, skipped = [], {}, 0, 0
        for name, examples in by_dataset.items():
            for ex in examples:
                if ex.domain in skip_domains:
                    skipped += 1
                    continue
                for k in range(samples):
                    key = sample_key(name, ex.id, k, temperature, ex.question)
                    keys[(name, ex.id, k)] = key
                    if key in cache.records:
                        from_cache += 1
                    else:
                        units.append(_Unit(name, ex, k, key))
        failed: list[_Unit] = []
        if units:
            if client is None:
                client = make_client(teacher, concurrency=concurrency, max_tries=max_tries)
            failed = _run_units(
                client, units, cache, temperature, concurrency, max_rationale_tokens, max_answer_tokens, progress
            )
        records = dict(cache.records)

    # -- this teacher's rationales per item, from the cache -------------------------------------
    correct = written = 0
    mine: dict[tuple[str, str, str], list[Rationale]] = {}  # (dataset, id, question) -> rationales
    for name, examples in by_dataset.items():
        for ex in examples:
            if ex.domain in skip_domains:
                continue
            kept = []
            for k in range(samples):
                rec = records.get(keys[(name, ex.id, k)])
                if rec is None:
                    continue
                answer = rec.get("answer") if isinstance(rec.get("answer"), str) else ""
                rationale = rec.get("rationale") if isinstance(rec.get("rationale"), str) else ""
                ok = bool(answer) and is_correct(answer, ex.answer, ex.answer_type)
                correct += ok
                if ok or keep_incorrect:
                    kept.append(Rationale(text=rationale, answer=answer, correct=ok, teacher=teacher))
            written += len(kept)
            mine[(name, ex.id, ex.question)] = kept
    _merge_into_train_files(data_dir, list(by_dataset), teacher, mine)

    failed_ids = sorted({f"{u.dataset}/{u.example.id}" for u in failed})
    return {
        "items": sum(len(v) for v in by_dataset.values()),
        "skipped": skipped,
        "samples_done": len(units) - len(failed),
        "from_cache": from_cache,
        "failed": len(failed_ids),
        "correct": correct,
        "written": written,
        "failed_ids": failed_ids[:10],
    }


def _merge_into_train_files(
    data_dir: Path, names: list[str], teacher: str, mine: dict[tuple[str, str, str], list[Rationale]]
) -> None:
    """Replace `teacher`'s rationales in each train.jsonl, re-read under the data folder's lock: another
    `prada teach` (another teacher) that rewrote a file meanwhile keeps its rationales (merge, not last
    writer wins). Items whose question changed meanwhile are left as they are."""
    with folder_lock(data_dir, f"prada teach --data {data_dir}", wait=True, create=False):
        summary_path = data_dir / "summary.json"
        summary = _read_summary(summary_path)
        for name in names:
            examples = read_examples(data_dir / name / "train.jsonl")
            for ex in examples:
                kept = mine.get((name, ex.id, ex.question))
                if kept is not None:
                    ex.rationales = [r for r in ex.rationales if r.teacher != teacher] + kept
            write_examples(data_dir / name / "train.jsonl", examples)
            if examples:
                entry = summary["datasets"].setdefault(name, {"domain": examples[0].domain, "n_train": len(examples)})
                entry["n_train_with_correct_rationale"] = sum(any(r.correct for r in ex.rationales) for ex in examples)
        atomic_write_json(summary_path, summary)


def _run_units(
    client, units, cache, temperature, concurrency, max_rationale_tokens, max_answer_tokens, progress
) -> list[_Unit]:
    """Ask the teacher for every unit, appending each finished sample to the cache from this thread.

    Returns the units that failed. A fatal error (bad key, unknown model) or a long run of failures
    with no success (teacher unreachable) stops the run; finished samples stay cached.
    """
    from tqdm.auto import tqdm

    workers = max(1, min(int(concurrency), int(client.max_workers)))
    size = max(1, int(client.batch_size))
    if client.supports_n:  # one request per question for all its missing samples
        by_question: dict[tuple[str, str], list[_Unit]] = {}
        for u in units:
            by_question.setdefault((u.dataset, u.example.id), []).append(u)
        groups = list(by_question.values())
    else:
        groups = [units[i : i + size] for i in range(0, len(units), size)]
    abort_after = max(10, 4 * workers)
    failed: list[_Unit] = []
    streak = 0
    bar = tqdm(total=len(units), desc=f"teach {client.name}", unit="sample", disable=hidden(progress))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="teacher")
    ok = False
    try:
        # Keep only a window of groups in flight so a stop cancels little and memory stays flat.
        todo = iter(groups)
        running: dict[Future, list[_Unit]] = {}

        def submit_next() -> None:
            group = next(todo, None)
            if group is not None:
                running[pool.submit(_ask, client, group, temperature, max_rationale_tokens, max_answer_tokens)] = group

        for _ in range(2 * workers):
            submit_next()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                group = running.pop(fut)
                try:
                    records = fut.result()
                except TeacherError as e:
                    if e.fatal:
                        raise TeacherError(f"{group[0].label}: {e}", fatal=True) from None
                    failed.extend(group)
                    streak += len(group)
                    for u in group:
                        log.warning("teacher failed on %s: %s", u.label, e)
                    if streak >= abort_after:
                        raise TeacherError(
                            f"{streak} samples in a row failed (last: {group[-1].label}: {e}); the teacher looks unreachable. "
                            "Finished samples are cached: rerun to continue.",
                            fatal=True,
                        ) from None
                else:
                    streak = 0
                    for rec in records:
                        cache.append(rec)
                bar.update(len(group))
                bar.set_postfix(failed=len(failed), refresh=False)
                submit_next()
        ok = True
    finally:
        if not ok:
            client.cancel()  # requests still retrying give up instead of holding the exit
        # On a stop, do not wait here for requests in flight; nothing they return is kept.
        pool.shutdown(wait=ok, cancel_futures=True)
        bar.close()
    return failed
