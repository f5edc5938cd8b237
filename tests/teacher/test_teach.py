"""`teach` end to end against the fake OpenAI server (faults, bounded retries, kill-resume, key hygiene) and a tiny local HF model."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from fake_openai import FAULTS, FakeOpenAI

from prada.data.schema import Example, Rationale, read_examples, write_examples
from prada.teacher.cache import cache_path
from prada.teacher.client import OpenAIClient, TeacherError
from prada.teacher.zeroshot_cot import stage1_prompt, stage2_prompt, teach

KEY = "sk-test-SECRET-77c1e2ab"
TEACHER = "openai:fake-model"
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def make_data(root: Path, n_arith: int = 20, n_parity: int = 6, n_pick: int = 6) -> Path:
    """Three datasets the fake server knows; every 5th arithmetic item is "(hard)": the teacher gets it wrong."""
    arith = []
    for i in range(n_arith):
        a, b = 3 + i, 2 * i + 1
        hard = " (hard)" if i % 5 == 4 else ""
        arith.append(
            Example(
                f"Tom has {a} apples{hard}. what is {a} + {b}?",
                str(a + b),
                "number",
                "arithmetic",
                "arith",
                f"arith-{i}",
            )
        )
    arith[0].rationales.append(Rationale("imported", str(3 + 1), True, "text-davinci-002"))
    parity = [
        Example(f"is {n} even?", "yes" if n % 2 == 0 else "no", "yes_no", "symbolic", "parity", f"parity-{n}")
        for n in range(10, 10 + n_parity)
    ]
    pick = []
    for i in range(n_pick):
        vals = [i + 1, 3 * i + 5, i + 2]
        pick.append(
            Example(
                f"which is largest? (A) {vals[0]} (B) {vals[1]} (C) {vals[2]}",
                "B",
                "choice",
                "other",
                "pick",
                f"pick-{i}",
                ["A", "B", "C"],
            )
        )
    summary = {"datasets": {}}
    for name, exs in (("arith", arith), ("parity", parity), ("pick", pick)):
        if not exs:
            continue
        write_examples(root / name / "train.jsonl", exs)
        write_examples(root / name / "test.jsonl", exs[:2])
        summary["datasets"][name] = {
            "domain": exs[0].domain,
            "n_train": len(exs),
            "n_test": 2,
            "n_train_with_correct_rationale": int(name == "arith"),
            "teacher_accuracy": 50.0,
        }
    (root / "summary.json").write_text(json.dumps(summary))
    return root


def client_for(srv: FakeOpenAI, concurrency: int = 4, max_tries: int = 6, **kw) -> OpenAIClient:
    kw = {"timeout": 1.0, "backoff_base": 0.005, "backoff_max": 0.05, "seed": 0, **kw}
    return OpenAIClient(
        "fake-model", name=TEACHER, base_url=srv.url, concurrency=concurrency, max_tries=max_tries, **kw
    )


def run(data: Path, srv: FakeOpenAI, concurrency: int = 4, max_tries: int = 6, **kw) -> dict:
    return teach(
        data, TEACHER, concurrency=concurrency, client=client_for(srv, concurrency, max_tries), progress=False, **kw
    )


def cache_keys(data: Path) -> list[str]:
    lines = cache_path(data, TEACHER).read_text().splitlines()
    return [json.loads(line)["key"] for line in lines]


def test_prompts_follow_zero_shot_cot():
    ex = Example("which is largest? (A) 1 (B) 5 (C) 2", "B", "choice", choices=["A", "B", "C"])
    assert stage1_prompt(ex.question) == "Q: which is largest? (A) 1 (B) 5 (C) 2\nA: Let's think step by step."
    assert stage2_prompt(ex, " It is 5. ").endswith(
        "step by step. It is 5.\nTherefore, among A through C, the answer is"
    )
    num = Example("what is 1 + 1?", "2", "number")
    assert stage2_prompt(num, "1 + 1 = 2.").endswith("\nTherefore, the answer (arabic numerals) is")
    yn = Example("is 2 even?", "yes", "yes_no")
    assert stage2_prompt(yn, "x").endswith("\nTherefore, the answer (Yes or No) is")


def test_teach_writes_correct_rationales_and_reruns_from_cache(tmp_path):
    data = make_data(tmp_path)
    with FakeOpenAI() as srv:
        stats = run(data, srv)
        first = {n: (data / n / "train.jsonl").read_bytes() for n in ("arith", "parity", "pick")}
        again = run(data, srv)
        assert len(srv.requests) == 2 * 32  # the rerun asked nothing
    assert stats == {
        "items": 32,
        "skipped": 0,
        "samples_done": 32,
        "from_cache": 0,
        "failed": 0,
        "correct": 28,
        "written": 28,
        "failed_ids": [],
    }
    assert again["from_cache"] == 32 and again["samples_done"] == 0 and again["written"] == 28
    assert {n: (data / n / "train.jsonl").read_bytes() for n in first} == first  # idempotent, nothing duplicated
    arith = read_examples(data / "arith" / "train.jsonl")
    assert [r.teacher for r in arith[0].rationales] == ["text-davinci-002", TEACHER]  # other teachers kept
    assert arith[0].rationales[1] == Rationale("3 + 1 = 4.", "4", True, TEACHER)
    assert all(not ex.rationales for ex in arith if "(hard)" in ex.question)  # wrong ones dropped
    summary = json.loads((data / "summary.json").read_text())["datasets"]
    assert [summary[n]["n_train_with_correct_rationale"] for n in ("arith", "parity", "pick")] == [16, 6, 6]
    assert summary["arith"]["teacher_accuracy"] == 50.0  # untouched
    assert read_examples(data / "arith" / "test.jsonl")[0].rationales[0].teacher == "text-davinci-002"  # train only


def test_keep_incorrect_samples_and_dataset_selection(tmp_path):
    data = make_data(tmp_path)
    with FakeOpenAI() as srv:
        stats = run(data, srv, samples=2, temperature=0.7, keep_incorrect=True, datasets=["arith"])
    assert stats["items"] == 20 and stats["samples_done"] == 40 and stats["written"] == 40
    arith = read_examples(data / "arith" / "train.jsonl")
    hard = [ex for ex in arith if "(hard)" in ex.question]
    assert all([r.correct for r in ex.rationales] == [False, False] for ex in hard)
    assert not read_examples(data / "parity" / "train.jsonl")[0].rationales  # not selected
    assert len(set(cache_keys(data))) == 40
    with pytest.raises(Exception, match="no train.jsonl for nope"):
        teach(data, TEACHER, datasets=["nope"], progress=False)


def test_faults_are_absorbed_without_duplicates_or_key_leaks(tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    ref = make_data(tmp_path / "ref")
    with FakeOpenAI() as srv:
        run(ref, srv)
    data = make_data(tmp_path / "data")
    max_tries = 12  # P(one request fails 12 times at 35%) ~ 3e-6
    with FakeOpenAI(fault_rate=0.35, seed=4, retry_after=("0", "0", "0", "1"), sleep_s=1.3) as srv:
        stats = teach(data, TEACHER, concurrency=6, client=client_for(srv, 6, max_tries), progress=True)
    faults, n = srv.faults_injected, len(srv.requests)
    print(
        f"\nfault test: {n} requests, {sum(faults.values())} faults injected ({sum(faults.values()) / n:.0%}): {dict(faults)}",
        file=sys.__stderr__,
    )
    assert stats["failed"] == 0 and stats["samples_done"] == 32
    assert sum(faults.values()) >= 0.25 * n and set(faults) == set(FAULTS)
    assert max(srv.prompt_counts.values()) <= max_tries
    keys = cache_keys(data)
    assert len(keys) == len(set(keys)) == 32
    for name in ("arith", "parity", "pick"):
        assert (data / name / "train.jsonl").read_bytes() == (ref / name / "train.jsonl").read_bytes()
    # The key went to the server, and nowhere else.
    assert srv.auth_headers == {f"Bearer {KEY}"}
    out = capsys.readouterr()
    assert KEY not in out.out + out.err + caplog.text
    for p in data.rglob("*"):
        if p.is_file():
            assert KEY.encode() not in p.read_bytes(), p


def test_bounded_retries_then_rerun_picks_up_failed_items(tmp_path, caplog):
    data = make_data(tmp_path, n_arith=3, n_parity=0, n_pick=0)
    with FakeOpenAI(status=500) as bad:
        stats = run(data, bad, concurrency=2, max_tries=3, datasets=["arith"])
    assert (
        stats["failed"] == 3
        and stats["samples_done"] == 0
        and stats["failed_ids"] == ["arith/arith-0", "arith/arith-1", "arith/arith-2"]
    )
    assert sorted(bad.prompt_counts.values()) == [3, 3, 3]  # exactly max_tries per request, stage 2 never reached
    assert "arith/arith-1 sample 0" in caplog.text
    assert read_examples(data / "arith" / "train.jsonl")[0].rationales[0].teacher == "text-davinci-002"
    with FakeOpenAI() as good:
        stats = run(data, good, datasets=["arith"])
    assert stats["failed"] == 0 and stats["samples_done"] == 3 and stats["from_cache"] == 0
    assert len(cache_keys(data)) == 3


def test_unreachable_teacher_stops_the_run(tmp_path):
    data = make_data(tmp_path, n_arith=15, n_parity=0, n_pick=0)
    with FakeOpenAI(status=500) as bad:
        with pytest.raises(TeacherError, match="unreachable") as ei:
            run(data, bad, concurrency=1, max_tries=1, datasets=["arith"])
    assert ei.value.fatal and 10 <= len(bad.requests) <= 11  # a queued request may start before the stop


def test_fatal_error_names_the_item(tmp_path):
    data = make_data(tmp_path, n_arith=2, n_parity=0, n_pick=0)
    with FakeOpenAI(status=401) as bad:
        with pytest.raises(TeacherError, match=r"arith/arith-\d sample 0: .*HTTP 401") as ei:
            run(data, bad, concurrency=1, datasets=["arith"])
    assert KEY not in str(ei.value)


def test_torn_cache_line_is_dropped_and_redone(tmp_path):
    data = make_data(tmp_path, n_arith=4, n_parity=0, n_pick=0)
    with FakeOpenAI() as srv:
        run(data, srv, datasets=["arith"])
        path = cache_path(data, TEACHER)
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(lines[:3]) + lines[3][:25])  # the 4th line was being written at the kill
        n0 = len(srv.requests)
        stats = run(data, srv, datasets=["arith"])
        assert len(srv.requests) - n0 == 2  # only the torn sample, both stages
    assert stats["from_cache"] == 3 and stats["samples_done"] == 1
    assert len(cache_keys(data)) == 4 and path.read_bytes().endswith(b"\n")


_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[3])
    from prada.teacher.client import OpenAIClient
    from prada.teacher.zeroshot_cot import teach
    client = OpenAIClient("fake-model", name="openai:fake-model", base_url=sys.argv[2], concurrency=2, max_tries=4, timeout=2.0, backoff_base=0.01)
    print(teach(sys.argv[1], "openai:fake-model", concurrency=2, client=client, progress=True))
""")


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    ref = make_data(tmp_path / "ref", n_arith=30)
    data = tmp_path / "data"
    shutil.copytree(ref, data)
    with FakeOpenAI() as srv:
        run(ref, srv)
    with FakeOpenAI(delay=0.03) as srv:
        env = {**os.environ, "OPENAI_API_KEY": KEY}
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(data), srv.url, str(SRC)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        path = cache_path(data, TEACHER)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not path.exists() or path.read_bytes().count(b"\n") < 8):
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL
        done_before = set(cache_keys(data))
        assert 8 <= len(done_before) < 42  # killed part-way
        with path.open("ab") as f:
            f.write(b'{"key": "arith/arith-29#0@T0')  # and as if the kill landed mid-append
        n0 = len(srv.requests)
        stats = run(data, srv)
        print(
            f"\nkill test: {len(done_before)}/42 samples cached at SIGKILL, {len(srv.requests) - n0} requests on resume",
            file=sys.__stderr__,
        )
        rerun_prompts = Counter(r["prompt"] for r in srv.requests[n0:])
    assert stats["from_cache"] == len(done_before) and stats["samples_done"] == 42 - len(done_before)
    # Nothing that finished before the kill was asked again; everything else exactly once per stage.
    for ex in (e for n in ("arith", "parity", "pick") for e in read_examples(ref / n / "train.jsonl")):
        asked = rerun_prompts[stage1_prompt(ex.question)]
        assert asked == (0 if any(k.startswith(f"{ex.dataset}/{ex.id}#") for k in done_before) else 1)
    keys = cache_keys(data)
    assert len(keys) == len(set(keys)) == 42
    for name in ("arith", "parity", "pick"):
        assert (data / name / "train.jsonl").read_bytes() == (ref / name / "train.jsonl").read_bytes()
    assert (data / "summary.json").read_bytes() == (ref / "summary.json").read_bytes()
    assert KEY.encode() not in out + err


@pytest.fixture(scope="module")
def tiny_hf_model(tmp_path_factory) -> Path:
    """A randomly initialised 1-layer Llama with a byte-level tokenizer, built offline."""
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-llama")
    specials = ["<pad>", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def test_local_hf_teacher_end_to_end(tmp_path, tiny_hf_model):
    from prada.teacher.client import make_client

    data = make_data(tmp_path, n_arith=5, n_parity=0, n_pick=0)
    teacher = f"hf:{tiny_hf_model}"
    stats = teach(
        data,
        teacher,
        keep_incorrect=True,
        datasets=["arith"],
        max_rationale_tokens=6,
        max_answer_tokens=3,
        progress=False,
    )
    assert stats["items"] == 5 and stats["samples_done"] == 5 and stats["failed"] == 0 and stats["written"] == 5
    arith = read_examples(data / "arith" / "train.jsonl")
    assert all(sum(r.teacher == teacher for r in ex.rationales) == 1 for ex in arith)
    assert (
        teach(data, teacher, keep_incorrect=True, datasets=["arith"], progress=False)["from_cache"] == 5
    )  # no model load needed
    # Batched left-padded greedy output equals one-at-a-time output.
    client = make_client(teacher)
    prompts = [stage1_prompt(ex.question) for ex in arith[:3]] + ["Q: hi\nA:"]
    assert client.complete(prompts, 5, 0.0) == [client.complete([p], 5, 0.0)[0] for p in prompts]


@pytest.mark.parametrize("questions, samples", [(5, 2), (3, 8)])
def test_local_hf_teacher_takes_several_samples_over_batches_it_does_not_fill(
    tmp_path, tiny_hf_model, questions, samples
):
    """Batches of 8 units: 5 x 2 leaves one question's 2 samples alone in the last batch, 3 x 8 gives
    each question a batch of its own; both reach `complete_n` (an AttributeError before HFClient had it)."""
    data = make_data(tmp_path, n_arith=questions, n_parity=0, n_pick=0)
    teacher = f"hf:{tiny_hf_model}"
    stats = teach(
        data,
        teacher,
        samples=samples,
        temperature=0.7,
        keep_incorrect=True,
        datasets=["arith"],
        max_rationale_tokens=4,
        max_answer_tokens=2,
        progress=False,
    )
    n = questions * samples
    assert stats["samples_done"] == n and stats["failed"] == 0 and stats["written"] == n, stats
    arith = read_examples(data / "arith" / "train.jsonl")
    assert all(sum(r.teacher == teacher for r in ex.rationales) == samples for ex in arith)


def test_second_writer_on_the_same_cache_is_refused(tmp_path):
    from prada.teacher.cache import TeacherCache

    path = cache_path(tmp_path, TEACHER)
    with TeacherCache(path) as cache:
        cache.append({"key": "a", "rationale": "r"})
        cache.append({"key": "a", "rationale": "again"})  # a present key is never written twice
        with pytest.raises(TeacherError, match="another `prada teach`"):
            TeacherCache(path).open()
    with TeacherCache(path) as cache:  # released on close
        assert list(cache.records) == ["a"] and cache.records["a"]["rationale"] == "r"
    assert path.read_text().count("\n") == 1


@pytest.mark.parametrize("honour_n", [True, False])
def test_diverse_samples_of_a_question_take_one_request_where_the_endpoint_supports_n(tmp_path, honour_n):
    data = make_data(tmp_path, n_arith=5, n_parity=3, n_pick=0)
    with FakeOpenAI(honour_n=honour_n) as srv:
        stats = run(data, srv, samples=4, temperature=0.7, keep_incorrect=True)
        stage1 = [r for r in srv.requests if "\nTherefore" not in r["prompt"]]
        stage2 = [r for r in srv.requests if "\nTherefore" in r["prompt"]]
    assert stats["samples_done"] == 8 * 4 and stats["written"] == 8 * 4 and stats["failed"] == 0
    assert len(stage2) == 8 * 4  # each sample's answer prompt differs: one request each
    if honour_n:  # 8 questions: 8 requests with n=4 instead of 32 -> 24 requests saved
        assert len(stage1) == 8 and {r["n"] for r in stage1} == {4}
    else:  # the first reply had one choice: that request counts as one sample, the rest go one by one
        assert len(stage1) == 8 * 4
    assert len(set(cache_keys(data))) == 32


def test_target_domains_are_skipped_unless_asked(tmp_path):
    data = make_data(tmp_path)
    before = (data / "pick" / "train.jsonl").read_bytes()
    with FakeOpenAI() as srv:
        stats = run(data, srv, skip_domains=["other"])
        assert not any("which is largest" in r["prompt"] for r in srv.requests)
        assert len(srv.requests) == 2 * (32 - 6)  # 12 requests saved on the 6 target questions
    assert stats["skipped"] == 6 and stats["samples_done"] == 26
    assert (data / "pick" / "train.jsonl").read_bytes() == before  # left exactly as it was


def test_the_cli_skips_the_target_domains_of_the_config_it_teaches_for(tmp_path, monkeypatch):
    from prada.experiment import untrained_domains

    run_cfg = tmp_path / "run.yaml"
    run_cfg.write_text("data:\n  target_domains: [other]\n")
    assert untrained_domains(str(run_cfg)) == {"other"}
    lodo = tmp_path / "lodo.yaml"
    lodo.write_text("methods: [ft-cot]\nprotocol: leave-one-domain-out\nbase: {data: {benchmark: synth}}\n")
    assert untrained_domains(str(lodo)) == set()  # every domain is some fold's source
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("methods: [prada]\nprotocol: explicit\ntarget_domains: [symbolic]\n")
    assert untrained_domains(str(explicit)) == {"symbolic"}


def test_hf_teacher_stops_generating_at_the_stop_string(counting_model):
    from prada.teacher.client import HFClient

    client = HFClient(str(counting_model))
    generated = []
    generate = client.model.generate

    def counting(*args, **kwargs):
        out = generate(*args, **kwargs)
        generated.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    client.model.generate = counting
    prompts = ["kq ###", "a ###", "mb ###"]
    full = client.complete(prompts, 64, 0.0)
    cut = client.complete(prompts, 64, 0.0, stop=[" u"])
    assert cut == [t[: t.index(" u")] for t in full] and cut[0] == " r s t"
    # decoding ended when the last row wrote the stop string (byte tokens: one a character), not at the budget
    assert generated[1] == max(t.index(" u") + len(" u") for t in full) < generated[0], generated
    assert client.complete(prompts, 64, 0.0) == [client.complete([p], 64, 0.0)[0] for p in prompts]  # batched = alone


def test_hf_teacher_knows_prada_aliases_and_never_asks_the_hub(tmp_path, monkeypatch, capsys):
    from prada.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = make_data(tmp_path, n_arith=1, n_parity=0, n_pick=0)
    before = os.environ.get("TQDM_DISABLE")
    main(["teach", "--data", str(data), "--teacher", "hf:tiny-random", "--keep-incorrect", "--quiet"])
    assert os.environ.get("TQDM_DISABLE") == before  # --quiet in-process leaves the environment as it was
    out = capsys.readouterr().out
    assert "'samples_done': 1" in out and "'failed': 0" in out
    assert all(
        r.teacher == "hf:tiny-random"
        for ex in read_examples(data / "arith" / "train.jsonl")
        for r in ex.rationales[-1:]
    )
