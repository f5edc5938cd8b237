"""data.train_files / test_files entries `hf:...` read Hugging Face datasets (offline: local dataset folders)."""

import pytest

from prada.data.hub import parse_spec, read_hub_examples
from prada.errors import ConfigError, DataError

datasets = pytest.importorskip("datasets")


def _save(folder, split_rows: dict):
    datasets.DatasetDict({s: datasets.Dataset.from_list(rows) for s, rows in split_rows.items()}).save_to_disk(folder)
    return folder


ROWS = [
    {"problem": f"What is {a} + {b}?", "solution": f"{a} + {b} = {a + b}.", "final": a + b}
    for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]
]


def test_spec_parsing():
    assert parse_spec("hf:openai/gsm8k#main@test", "train") == ("openai/gsm8k", "main", "test")
    assert parse_spec("hf:/data/x", "train") == ("/data/x", None, "train")
    with pytest.raises(ConfigError):
        parse_spec("hf:", "train")


def test_a_saved_dataset_folder_with_a_column_mapping(tmp_path):
    folder = _save(tmp_path / "sums", {"train": ROWS, "test": ROWS[:2]})
    columns = ["question=problem", "answer=final", "rationale=solution"]
    values = ["answer_type=number", "domain=arithmetic"]
    train = read_hub_examples(f"hf:{folder}", columns, values, "train")
    assert [e.question for e in train] == [r["problem"] for r in ROWS]
    assert train[1].answer == "7" and train[1].answer_type == "number" and train[1].domain == "arithmetic"
    assert train[1].dataset == "sums" and train[1].id == "train-1"
    assert train[1].rationales[0].text == "3 + 4 = 7." and train[1].rationales[0].correct
    test = read_hub_examples(f"hf:{folder}@test", columns, values, "train")
    assert len(test) == 2 and test[0].id == "test-0"
    with pytest.raises(DataError, match="no column 'nope'"):
        read_hub_examples(f"hf:{folder}", ["question=nope"], values)
    with pytest.raises(DataError, match="answer_type"):  # schema checks apply to every row
        read_hub_examples(f"hf:{folder}", columns, ["answer_type=number-ish"])


def test_a_run_trains_and_evaluates_on_a_local_dataset_folder(tmp_path, synth_dir):
    from tiny import tiny_config

    from prada.evaluation.evaluate import evaluate_run
    from prada.train.loop import train

    folder = _save(tmp_path / "sums", {"train": ROWS * 4, "test": ROWS[:2]})
    # a data-files folder (parquet) works the same way as a saved one
    files = tmp_path / "sums_parquet"
    files.mkdir()
    datasets.Dataset.from_list(ROWS[:3]).to_parquet(str(files / "test.parquet"))
    cfg = tiny_config(
        synth_dir,
        "method=ft-cot",
        "data.benchmark=none",
        "data.data_dir=",
        "data.datasets=[]",
        "data.target_domains=[]",
        f"data.train_files=[hf:{folder}]",
        f"data.test_files=[hf:{folder}, hf:{files}]",
        "data.hub_columns=[question=problem, answer=final, rationale=solution]",
        "data.hub_values=[answer_type=number, domain=arithmetic]",
        "train.max_steps=2",
        "eval.max_new_tokens=8",
    )
    run = train(cfg, tmp_path / "run", progress=False)
    result, _ = evaluate_run(run, progress=False)
    assert {k: v["n"] for k, v in result["datasets"].items()} == {"sums": 2, "sums_parquet": 3}


YES_NO_ROWS = [{"problem": f"Is {n} even?", "label": n % 2 == 0} for n in range(4)]


def test_hub_mappings_can_be_scoped_to_one_dataset(tmp_path):
    sums = _save(tmp_path / "sums", {"train": ROWS})
    even = _save(tmp_path / "even", {"train": YES_NO_ROWS})
    entries = [f"hf:{sums}", f"hf:{even}"]
    columns = ["question=problem", "sums:answer=final", f"{even}:answer=label"]  # by key or by NAME
    values = ["domain=arithmetic", "sums:answer_type=number", "even:answer_type=yes_no", "even:domain=commonsense"]
    a = read_hub_examples(entries[0], columns, values, "train", entries)
    b = read_hub_examples(entries[1], columns, values, "train", entries)
    assert [(e.answer, e.answer_type, e.domain) for e in a[:2]] == [
        ("3", "number", "arithmetic"),
        ("7", "number", "arithmetic"),
    ]
    assert [(e.answer, e.answer_type, e.domain) for e in b[:2]] == [
        ("yes", "yes_no", "commonsense"),
        ("no", "yes_no", "commonsense"),
    ]
    with pytest.raises(ConfigError, match="scope 'evn' names no hf: entry"):
        read_hub_examples(entries[0], columns, ["evn:answer_type=yes_no"], "train", entries)
    with pytest.raises(ConfigError, match="DATASET:FIELD=VALUE"):
        read_hub_examples(entries[0], columns, [":answer_type=yes_no"], "train", entries)


def test_an_unscoped_answer_type_that_relabels_another_hub_dataset_is_an_error(tmp_path):
    """One global `answer_type=number` for a number set and a yes/no set: the yes/no rows are caught, with the fix."""
    sums = _save(tmp_path / "sums", {"train": ROWS})
    even = _save(tmp_path / "even", {"train": YES_NO_ROWS})
    entries = [f"hf:{sums}", f"hf:{even}"]
    columns, values = ["question=problem", "sums:answer=final", "even:answer=label"], ["answer_type=number"]
    assert len(read_hub_examples(entries[0], columns, values, "train", entries)) == 4  # right for this one
    with pytest.raises(
        DataError, match=r"hf:.*even:0: field 'answer': 'yes' is not a number.*scope it, e\.g\. even:answer_type"
    ):
        read_hub_examples(entries[1], columns, values, "train", entries)
    # the yes/no set carries its own answer_type column: a global value must not silently replace it
    typed = _save(tmp_path / "typed", {"train": [{**r, "answer_type": "yes_no"} for r in YES_NO_ROWS]})
    entries = [f"hf:{sums}", f"hf:{typed}"]
    with pytest.raises(ConfigError, match="answer_type=number applies to every hf: dataset.*own 'answer_type' column"):
        read_hub_examples(entries[1], ["question=problem", "typed:answer=label"], values, "train", entries)
    # alone (one hub dataset) the global form keeps its old meaning: the user's value wins
    alone = read_hub_examples(
        entries[1], ["question=problem", "answer=label"], ["answer_type=yes_no"], "train", entries[1:]
    )
    assert alone[0].answer_type == "yes_no"
