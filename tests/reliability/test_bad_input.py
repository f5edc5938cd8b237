"""Bad input never gives a library traceback: loaders, config parsing and answer extraction under generated garbage.

Every failure must be a typed PradaError subclass that names file:line (data) or the dotted key (config)
and says what to do; answer extraction must accept any text, never raise and never evaluate it.
Property tests use bounded `max_examples` so the whole file stays within a few seconds.
"""

from __future__ import annotations

import builtins
import json
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reliability.harness import VALID

from prada.config import RunConfig, load_config, parse_overrides
from prada.data.registry import ANSWER_TYPES
from prada.data.schema import Example, read_examples
from prada.errors import ConfigError, DataError, PradaError
from prada.evaluation.extract import canonical_number, extract_answer, extract_teacher_answer, is_correct

REPO = Path(__file__).resolve().parents[2]
FAST = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- example JSONL -------------------------------------------------------------------------------------


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6
)


@st.composite
def example_objects(draw) -> object:
    """A valid example with 0-3 mutations: dropped fields, wrong types, empty strings, unknown keys, bad rationales."""
    obj = json.loads(json.dumps(VALID))
    obj["id"] = draw(st.sampled_from(["toy-1", "toy-2", "", "x"]))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*VALID, "choices", "extra"]))
        kind = draw(st.sampled_from(["drop", "value", "empty", "blank"]))
        if kind == "drop":
            obj.pop(key, None)
        elif kind == "value":
            obj[key] = draw(json_values)
        elif kind == "empty":
            obj[key] = ""
        else:
            obj[key] = " \t"
        if key == "rationales" and draw(st.booleans()):
            obj["rationales"] = [
                draw(
                    st.dictionaries(st.sampled_from(["text", "answer", "correct", "teacher"]), json_values, max_size=4)
                )
            ]
    if draw(st.booleans()):
        obj["answer_type"] = draw(st.sampled_from([*ANSWER_TYPES, "Number", "numeric", ""]))
    return obj


def _line(draw_obj) -> bytes:
    return json.dumps(draw_obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


lines = st.one_of(
    example_objects().map(_line),
    example_objects().map(_line),
    json_values.map(_line),  # a JSON value that is not an example object
    st.text(max_size=40)
    .filter(lambda t: "\n" not in t)
    .map(lambda t: t.encode("utf-8", "surrogatepass")),  # rarely JSON
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),  # often not UTF-8
    st.sampled_from(
        [
            b"",
            b"   ",
            b"{",
            b'{"question": "q"',
            b"[" * 5000 + b"]" * 5000,
            b"\xef\xbb\xbf{}",
            b"\xff\xfe{}",
            _line({**VALID, "question": "x" * 300_000}),
        ]
    ),  # huge line: valid
)


def _expect_single_line_ok(path: Path, raw: bytes) -> bool:
    path.write_bytes(raw + b"\n")
    try:
        read_examples(path)
    except DataError as e:
        return "no examples" in str(e)  # a blank line alone is fine, it just holds no example
    return True


@FAST
@given(st.lists(lines, min_size=0, max_size=6))
@example([_line(VALID), _line({**VALID, "answer": 5})])
@example([_line(VALID), _line(VALID)])  # duplicate id
@example([b"[" * 100_000 + b"]" * 100_000])  # nested past the recursion limit
def test_read_examples_gives_data_errors_naming_file_and_line(tmp_path, raw_lines):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\n".join(raw_lines) + b"\n")
    try:
        examples = read_examples(path)
    except DataError as e:
        msg = str(e)
        assert e.path == str(path) and msg.startswith(str(path))
        if e.line is not None:
            assert 1 <= e.line <= len(raw_lines) and msg.startswith(f"{path}:{e.line}: ")
            if e.field:
                assert f"field '{e.field}'" in msg
            # The named line is the first bad one: every earlier line reads on its own.
            probe = tmp_path / "probe.jsonl"
            assert all(_expect_single_line_ok(probe, raw) for raw in raw_lines[: e.line - 1])
            if "duplicate id" not in msg:
                assert not _expect_single_line_ok(probe, raw_lines[e.line - 1])
        else:
            assert "no examples" in msg
        return
    assert examples and all(isinstance(ex, Example) for ex in examples)
    for ex in examples:
        assert ex.question.strip() and ex.answer.strip() and ex.answer_type in ANSWER_TYPES
        assert all(isinstance(r.correct, bool) for r in ex.rationales)


@pytest.mark.parametrize(
    "content, line, field, hint",
    [
        (b'{"question": "q", "answer_type": "number"}', 1, "answer", "missing"),
        (b'{"question": "q", "answer": 5, "answer_type": "number"}', 1, "answer", "expected str"),
        (b'{"question": " ", "answer": "5", "answer_type": "number"}', 1, "question", "is empty"),
        (b'{"question": "q", "answer": "", "answer_type": "number"}', 1, "answer", "is empty"),
        (b'{"question": "q", "answer": "5", "answer_type": "int"}', 1, "answer_type", "must be one of"),
        (
            b'{"question": "q", "answer": "5", "answer_type": "number", "rationales": [{"text": "t"}]}',
            1,
            "rationales[0].answer",
            "expected str",
        ),
        (
            b'{"question": "q", "answer": "5", "answer_type": "number", "choices": "ABC"}',
            1,
            "choices",
            "list of strings",
        ),
        (b'\n\n{"question": "caf\xe9", "answer": "5", "answer_type": "number"}', 3, None, "not valid UTF-8"),
        (b'{"question": "q", "answer": "5", "answer_type": "number"}\n{"question": "q",', 2, None, "invalid JSON"),
        (
            b'{"question": "q", "answer": "5", "answer_type": "number", "id": "a"}\n{"question": "r", "answer": "6", "answer_type": "number", "id": "a"}',
            2,
            "id",
            "duplicate id 'a'",
        ),
        (b"[1, 2]", 1, None, "expected a JSON object"),
    ],
)
def test_each_bad_line_names_file_line_field_and_fix(tmp_path, content, line, field, hint):
    path = tmp_path / "custom.jsonl"
    path.write_bytes(content + b"\n")
    with pytest.raises(DataError) as err:
        read_examples(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), line, field)
    assert hint in str(err.value) and str(err.value).startswith(f"{path}:{line}: ")


def test_unreadable_paths_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_examples(tmp_path / "absent.jsonl")
    with pytest.raises(DataError, match="cannot read"):
        read_examples(tmp_path)  # a folder
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="no examples"):
        read_examples(tmp_path / "empty.jsonl")


# --- config ----------------------------------------------------------------------------------------------

KNOWN_KEYS = [
    "method",
    "seed",
    "data.benchmark",
    "data.datasets",
    "data.target_domains",
    "data.source_domains",
    "data.only_correct",
    "data.max_train_per_dataset",
    "student.model",
    "student.trust_remote_code",
    "student.max_length",
    "student.pad_multiple",
    "prompt.num_virtual_tokens",
    "prompt.encoder",
    "adversary.lambda_max",
    "adversary.schedule",
    "adversary.layer",
    "lora.r",
    "lora.dropout",
    "train.backbone",
    "train.epochs",
    "train.max_steps",
    "train.batch_size",
    "train.lr",
    "train.log_every",
    "train.save_every",
    "train.save_every_minutes",
    "train.threads",
    "train.precision",
    "eval.max_new_tokens",
    "eval.batch_size",
]
ODD_KEYS = [
    "train.lrr",
    "trian.lr",
    "foo",
    "data",
    "train",
    "method.x",
    "data.datasets.x",
    "",
    ".",
    "a..b",
    "train.",
    "Train.LR",
]
RAW_VALUES = [
    "",
    "0",
    "-1",
    "1",
    "3",
    "0.5",
    "-0.5",
    "1e-3",
    "nan",
    "inf",
    "-inf",
    "true",
    "false",
    "yes",
    "null",
    "~",
    "[a, b]",
    "[]",
    "[1, 2]",
    "{x: 1}",
    "arithmetic",
    "other",
    "[other]",
    "[arithmetic, other]",
    "prada",
    "ft-cot",
    "frozen",
    "lora",
    "fp32",
    "lstm",
    "constant",
    "[",
    "{",
    ": :",
    "!!python/object/apply:os.system ['true']",
    "2020-01-01",
    "'quoted'",
]

overrides = st.lists(
    st.tuples(st.sampled_from(KNOWN_KEYS + ODD_KEYS), st.sampled_from(RAW_VALUES) | st.text(max_size=6)).map(
        lambda kv: f"{kv[0]}={kv[1]}"
    )
    | st.text(max_size=10),
    max_size=4,
)


def _assert_names_a_key(e: ConfigError, given_keys: list[str]) -> None:
    """The message opens with the override at fault or a dotted key the user gave (or one of a cross-field rule)."""
    msg = str(e)
    if msg.startswith("override "):
        return
    keys = {"data.target_domains", "data.source_domains", "train.backbone"}  # cross-field rules
    for g in given_keys:
        parts = g.split(".")
        keys |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    assert any(msg.startswith(f"{k}: ") for k in keys), f"error does not start with the key at fault: {msg!r}"


@FAST
@given(overrides)
@example(["method=prada", "method.x=1"])
@example(["=5"])
@example(["train.log_every=0"])
@example(["student.pad_multiple=0"])
@example(["train.threads=-1"])
@example(["train.lr=nan"])
def test_overrides_give_a_config_or_a_config_error_naming_the_key(items):
    try:
        cfg = load_config(None, items)
    except ConfigError as e:
        _assert_names_a_key(e, [i.split("=", 1)[0].strip() for i in items if "=" in i])
        return
    assert isinstance(cfg, RunConfig)


config_trees = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats() | st.sampled_from(RAW_VALUES),
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(
            st.sampled_from([k.split(".")[-1] for k in KNOWN_KEYS] + ["data", "train", "bogus"]), c, max_size=3
        )
    ),
    max_leaves=8,
)


@FAST
@given(
    st.one_of(
        config_trees.map(lambda t: yaml.safe_dump(t).encode()),
        st.binary(max_size=60),
        st.sampled_from(
            [
                b"train: {lr: fast}",
                b"data: [1, 2]",
                b"- a\n- b",
                b"method: [",
                b"\xff\xfe",
                b"data:\n  datasets: 5",
                b"student:\n  trust_remote_code: maybe",
                b"train:\n  max_steps: 1.5",
                b"a: &x [*x]",
            ]
        ),
    )
)
def test_yaml_files_give_a_config_or_a_config_error(tmp_path, content):
    path = tmp_path / "cfg.yaml"
    path.write_bytes(content)
    try:
        cfg = load_config(path)
    except ConfigError as e:
        msg = str(e)
        assert msg.startswith(str(path)) or "unknown key" in msg or re.match(r"[a-z_]+(\.[a-z_]+)*: ", msg), msg
        return
    assert isinstance(cfg, RunConfig)


def test_config_file_problems_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)  # a folder
    with pytest.raises(ConfigError, match=r"method was already given a value"):
        parse_overrides(["method=prada", "method.x=1"])


def _custom_train(tmp_path: Path, correct: bool) -> Path:
    f = tmp_path / "train.jsonl"
    f.write_text(json.dumps({**VALID, "rationales": [{**VALID["rationales"][0], "correct": correct}]}) + "\n")
    return f


@pytest.mark.parametrize(
    "overrides, error, pattern",
    [
        (
            ["data.datasets=[synth_arithmetic,nope]"],
            ConfigError,
            r"data.datasets: unknown dataset\(s\) \['nope'\]; available",
        ),
        (
            ["data.target_domains=[physics]"],
            ConfigError,
            r"data.target_domains: unknown domain\(s\) \['physics'\]; the selected data has",
        ),
        (
            ["data.source_domains=[aritmetic]", "data.target_domains=[]"],
            ConfigError,
            r"data.source_domains: unknown domain",
        ),
        (
            ["data.datasets=[synth_tracking]", "data.target_domains=[other]"],
            ConfigError,
            r"data.source_domains: no source domain left",
        ),
        (
            ["data.source_domains=[other]", "data.target_domains=[other]"],
            ConfigError,
            r"data.target_domains: \['other'\] is also a source",
        ),
    ],
)
def test_dataset_and_domain_selection_errors(synth_dir, overrides, error, pattern):
    from prada.distill.dataset import load_distillation_set

    with pytest.raises(error, match=pattern):
        cfg = load_config(REPO / "configs" / "tiny.yaml", [f"data.data_dir={synth_dir}", *overrides])
        load_distillation_set(cfg.data, cfg.seed)


def test_nothing_left_after_filtering_says_what_to_do(tmp_path):
    from prada.distill.dataset import load_distillation_set

    cfg = load_config(None, ["data.benchmark=none", f"data.train_files=[{_custom_train(tmp_path, correct=False)}]"])
    with pytest.raises(
        DataError, match="no training example with a correct rationale.*prada teach.*only_correct=false"
    ):
        load_distillation_set(cfg.data, cfg.seed)
    cfg = load_config(
        None, ["data.benchmark=none", "data.only_correct=false", f"data.train_files=[{tmp_path / 'train.jsonl'}]"]
    )
    assert len(load_distillation_set(cfg.data, cfg.seed).source_train) == 1


def test_bad_line_in_a_data_folder_names_the_file(synth_dir, tmp_path):
    import shutil

    from prada.distill.dataset import load_distillation_set

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    f = data / "synth_coin_flip" / "train.jsonl"
    rows = f.read_text().splitlines()
    rows[6] = rows[6].replace('"answer_type": "yes_no"', '"answer_type": "boolean"')
    f.write_text("\n".join(rows) + "\n")
    cfg = load_config(REPO / "configs" / "tiny.yaml", [f"data.data_dir={data}"])
    with pytest.raises(DataError, match=rf"^{re.escape(str(f))}:7: field 'answer_type': must be one of"):
        load_distillation_set(cfg.data, cfg.seed)


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_data_dir_of_other_files_is_an_error_and_nothing_is_written_into_it(tmp_path):
    from prada.distill.dataset import load_distillation_set

    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "train.jsonl").write_text(json.dumps(VALID) + "\n")  # a file at the top, not <dataset>/train.jsonl
    mine = tmp_path / "mine"
    (mine / "my_dataset").mkdir(parents=True)
    (mine / "my_dataset" / "train.jsonl").write_text(json.dumps(VALID) + "\n")
    for folder, shown in ((stray, "train.jsonl"), (mine, "my_dataset")):
        before = _listing(folder)
        cfg = load_config(REPO / "configs" / "tiny.yaml", [f"data.data_dir={folder}"])
        with pytest.raises(
            ConfigError,
            match=rf"data.data_dir={re.escape(str(folder))}: no summary.json, and it holds "
            rf"\['{shown}'\].*set data.benchmark=none",
        ):
            load_distillation_set(cfg.data, cfg.seed)
        assert _listing(folder) == before
    # the way the message points to: the user's own layout, read as it is, once its examples name their folder
    cfg = load_config(None, ["data.benchmark=none", f"data.data_dir={mine}"])
    f = mine / "my_dataset" / "train.jsonl"
    with pytest.raises(
        DataError,
        match=rf"^{re.escape(str(f))}: field 'dataset': example 'toy-1' says dataset 'toy' "
        "but sits in the folder of dataset 'my_dataset'",
    ):
        load_distillation_set(cfg.data, cfg.seed)
    f.write_text(json.dumps({**VALID, "dataset": "my_dataset"}) + "\n")
    assert [e.dataset for e in load_distillation_set(cfg.data, cfg.seed).source_train] == ["my_dataset"]


def test_a_data_dir_that_is_a_file_or_missing_with_benchmark_none_is_an_error(tmp_path):
    from prada.distill.dataset import load_distillation_set

    f = _custom_train(tmp_path, correct=True)
    for overrides, pattern in (
        ([f"data.data_dir={f}"], "is a file, not a data folder.*data.train_files"),
        (["data.benchmark=none", f"data.data_dir={tmp_path / 'nope'}"], "no such folder"),
    ):
        cfg = load_config(REPO / "configs" / "tiny.yaml", overrides)
        with pytest.raises(ConfigError, match=rf"^data.data_dir=.*: {pattern}"):
            load_distillation_set(cfg.data, cfg.seed)


def test_an_interrupted_synth_build_in_data_dir_is_finished(synth_dir, tmp_path):
    import shutil

    from prada.distill.dataset import prepare_data

    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(
        synth_dir / "synth_arithmetic", data / "synth_arithmetic"
    )  # what a killed build left: no summary.json
    (data / ".summary.json.tmp").write_text("{")
    cfg = load_config(REPO / "configs" / "tiny.yaml", [f"data.data_dir={data}"])
    assert prepare_data(cfg.data) == data
    assert (data / "summary.json").exists() and (data / "synth_tracking" / "train.jsonl").exists()


def test_a_student_model_that_cannot_load_names_the_key_and_the_path(tmp_path):
    from prada.train import backbones

    (tmp_path / "notes.txt").write_text("not a model")
    cases = [
        (str(tmp_path), "a folder without config.json is not a model folder"),
        ("./no/such/model", "no such folder"),
    ]
    for path, pattern in cases:
        for load in (backbones.load_tokenizer, backbones.load_causal_lm):
            with pytest.raises(PradaError, match=rf"^student.model='{re.escape(path)}': {pattern}"):
                load(path)
    # a hub id that cannot be fetched (offline here): transformers' OSError becomes one line with what to do
    offline = OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your connection.")
    with mock.patch("transformers.AutoTokenizer.from_pretrained", side_effect=offline):
        with pytest.raises(
            PradaError,
            match=r"^student.model='some/model': cannot load its tokenizer \(We couldn't connect "
            r"to 'https://huggingface.co' to load the files.\)\. Give a local folder",
        ) as e:
            backbones.load_tokenizer("some/model")
    assert "\n" not in str(e.value)


# --- answer extraction -------------------------------------------------------------------------------------

CANARY_CODE = "__import__('os').system('touch {marker}')"
TOKENS = [
    "-->",
    " ",
    "\n",
    "1",
    "42",
    "-7",
    "3.50",
    "1,234",
    "3/4",
    "12/0",
    "$5",
    ".5",
    "9" * 5000,
    "9" * 400 + "/7",
    "1/" + "3" * 5000,
    "(A)",
    "A",
    "B)",
    "E",
    "a",
    "yes",
    "No",
    "YES.",
    '"',
    "'",
    "“",
    "”",
    "the answer is",
    "eval(",
    "exec(",
    "{",
    "[",
    "\\",
    "^",
]


@st.composite
def model_outputs(draw) -> str:
    if draw(st.booleans()):
        return draw(st.text(max_size=80))
    return "".join(draw(st.lists(st.sampled_from(TOKENS) | st.text(max_size=4), max_size=14)))


@FAST
@given(
    model_outputs(),
    st.sampled_from(ANSWER_TYPES),
    st.none() | st.lists(st.text(max_size=2), max_size=5),
    st.text(max_size=12),
)
@example("--> " + "9" * 400 + "/7", "number", None, "1")
@example("--> 1/" + "3" * 5000, "number", None, "0")
@example("(A) or (]) -->", "choice", ["]", "^", "-", "\\"], "A")
def test_extraction_never_raises_and_never_evaluates(tmp_path, text, answer_type, choices, gold):
    marker = tmp_path / "evaluated"
    text = text + CANARY_CODE.format(marker=marker) if len(text) % 3 == 0 else text
    forbidden = mock.Mock(side_effect=AssertionError("model output was evaluated"))
    with (
        mock.patch.object(builtins, "eval", forbidden),
        mock.patch.object(builtins, "exec", forbidden),
        mock.patch.object(builtins, "compile", forbidden),
    ):
        student = extract_answer(text, answer_type, choices)
        teacher = extract_teacher_answer(text, answer_type, choices)
        ok = is_correct(student, gold, answer_type)
        num = canonical_number(text)
    assert student is None or isinstance(student, str)
    assert teacher is None or isinstance(teacher, str)
    assert isinstance(ok, bool) and (num is None or isinstance(num, str))
    assert not forbidden.called and not marker.exists()


# --- through the command line ------------------------------------------------------------------------------


def _prada(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "prada", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _assert_one_line_error(r: subprocess.CompletedProcess, *fragments: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    errors = [line for line in r.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("prada: error: "), r.stderr[-2000:]
    for f in fragments:
        assert f in errors[0], errors[0]


def test_cli_bad_jsonl_is_one_line_error_with_exit_2(tmp_path):
    data = tmp_path / "data"
    (data / "toy").mkdir(parents=True)
    good = json.dumps({k: v for k, v in VALID.items() if k != "rationales"})
    (data / "toy" / "train.jsonl").write_text(good + "\n" + good.replace('"5"', "5").replace("toy-1", "toy-2") + "\n")
    r = _prada(
        "teach", "--data", str(data), "--teacher", "openai:nobody", env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    )
    _assert_one_line_error(r, f"{data / 'toy' / 'train.jsonl'}:2: field 'answer': expected str, got int")


def test_cli_bad_synth_knob_is_one_line_error(tmp_path):
    _assert_one_line_error(
        _prada("data", "synth", "--out", str(tmp_path / "s"), "--n-train", "-1"), "n_train and n_test must be >= 0"
    )


def test_cli_bad_config_is_one_line_error_with_exit_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("method: prada\ntrain:\n  lr: fast\n")
    _assert_one_line_error(
        _prada("train", "--config", str(cfg), "--out", str(tmp_path / "run")), "train.lr: expected float, got 'fast'"
    )
    assert not (tmp_path / "run").exists()


def test_prada_error_is_the_base_of_every_typed_error():
    from prada.errors import ChecksumError

    assert all(issubclass(c, PradaError) for c in (DataError, ConfigError, ChecksumError))
