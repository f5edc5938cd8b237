"""Helpers of the second outside attack's tests (issue 25): folder snapshots and an in-process scripted teacher."""

from __future__ import annotations

from pathlib import Path


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for folders): equal snapshots mean nothing was touched."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


class ScriptedTeacher:
    """An in-process teacher back-end: stage 1 and stage 2 replies from functions of the prompt."""

    name, batch_size, max_workers, supports_n = "openai:scripted", 1, 2, False

    def __init__(self, stage1, stage2, on_call=None):
        self.stage1, self.stage2, self.on_call, self.calls = stage1, stage2, on_call, 0

    def complete(self, prompts, max_tokens, temperature, stop=None):
        self.calls += 1
        if self.on_call is not None:
            self.on_call(self.calls)
        return [self.stage2(p) if "\nTherefore" in p else self.stage1(p) for p in prompts]


def teach_data(root: Path, n: int = 4) -> Path:
    from prada.data.schema import Example, write_examples

    for name, answer_type, answer in (("words", "text", "ab"), ("sums", "number", "4")):
        write_examples(
            root / name / "train.jsonl",
            [
                Example(f"q{i} of {name}?", answer, answer_type, domain=name, dataset=name, id=f"{name}-{i}")
                for i in range(n)
            ],
        )
    return root
