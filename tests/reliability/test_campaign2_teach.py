"""The second outside attack (issue 25), `prada teach`: a 2 MB hostile reply, a lone surrogate, two teachers on
one data folder, a wrong-typed cache line. Each is the right result or a retryable failed sample, never a hang,
a crash or lost rationales."""

from __future__ import annotations

import pytest
from reliability.campaign2 import ScriptedTeacher, teach_data


def test_a_2_mb_hostile_teacher_reply_does_not_hang_teach(tmp_path):
    import time

    from prada.teacher.zeroshot_cot import teach

    data = teach_data(tmp_path / "data", n=2)
    hostile = "“a" * 1_000_000  # 2 MB: one opener after another, never a closer
    client = ScriptedTeacher(lambda p: "so it is ab.", lambda p: hostile)
    t0 = time.monotonic()
    stats = teach(data, client.name, client=client, progress=False)
    elapsed = time.monotonic() - t0
    assert stats["samples_done"] == 4 and elapsed < 30, elapsed


# --- item 4: a lone surrogate in a reply is a retryable bad sample ------------------------------------------------


@pytest.mark.parametrize("stage", [1, 2])
def test_a_lone_surrogate_in_a_reply_is_a_failed_sample_not_a_crash(tmp_path, stage):
    from prada.teacher.cache import cache_path
    from prada.teacher.zeroshot_cot import teach

    data = teach_data(tmp_path / "data", n=2)
    bad = "so it is \ud800 ab."
    client = ScriptedTeacher(
        (lambda p: bad) if stage == 1 else (lambda p: "so it is ab."),
        (lambda p: bad) if stage == 2 else (lambda p: " ab."),
    )
    for _ in range(2):  # the rerun asks again and fails the same way, without a crash
        stats = teach(data, client.name, client=client, progress=False)
        assert stats["failed"] == 4 and stats["samples_done"] == 0
    cache = cache_path(data, client.name)
    assert not cache.exists() or cache.read_bytes().decode("utf-8") == ""


# --- item 5: two teachers on one data folder at once -------------------------------------------------------------


def test_two_teachers_on_one_data_folder_keep_both_teachers_rationales(tmp_path):
    from prada.data.schema import read_examples
    from prada.teacher.zeroshot_cot import teach

    data = teach_data(tmp_path / "data")
    answer = lambda p: " ab." if "of words" in p else " 4."  # noqa: E731
    second = ScriptedTeacher(lambda p: "second says so.", answer)
    second.name = "openai:second"

    def run_second_meanwhile(call: int) -> None:  # the other `prada teach` finishes while this one asks
        if call == 1:
            teach(data, second.name, client=second, progress=False)

    first = ScriptedTeacher(lambda p: "first says so.", answer, on_call=run_second_meanwhile)
    first.max_workers = 1
    teach(data, first.name, client=first, progress=False)
    for name in ("words", "sums"):
        for ex in read_examples(data / name / "train.jsonl"):
            assert sorted(r.teacher for r in ex.rationales) == ["openai:scripted", "openai:second"], ex.id


# --- item 19: a wrong-typed teacher cache line ------------------------------------------------------------------------


def test_a_wrong_typed_teacher_cache_line_is_redone_and_train_jsonl_stays_valid(tmp_path):
    import json

    from prada.data.schema import read_examples
    from prada.teacher.cache import cache_path, sample_key
    from prada.teacher.zeroshot_cot import teach

    data = teach_data(tmp_path / "data", n=1)
    client = ScriptedTeacher(lambda p: "so it is.", lambda p: " ab." if "of words" in p else " 4.")
    cache = cache_path(data, client.name)
    cache.parent.mkdir(parents=True)
    forged = [
        {"key": sample_key("words", "words-0", 0, 0.0, "q0 of words?"), "rationale": ["x"], "answer": "ab"},
        {"key": sample_key("sums", "sums-0", 0, 0.0, "q0 of sums?"), "rationale": "r", "answer": 4},
    ]
    cache.write_text("".join(json.dumps(r) + "\n" for r in forged))
    stats = teach(data, client.name, client=client, progress=False)
    assert stats["samples_done"] == 2 and stats["correct"] == 2
    for name in ("words", "sums"):  # a file `prada train` reads
        (ex,) = read_examples(data / name / "train.jsonl")
        assert [r.text for r in ex.rationales] == ["so it is."]
