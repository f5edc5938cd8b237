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
