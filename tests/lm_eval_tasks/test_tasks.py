"""The lm-eval-harness task folder shipped in the wheel: prada's prompt format and prada's answer rules."""

import re
import tomllib
from pathlib import Path

import yaml

from prada.data.registry import FTCOT12
from prada.lm_eval_tasks import HERE, TEMPLATE, ftcot12_files
from prada.lm_eval_tasks.utils import process_results

REPO = Path(__file__).resolve().parents[2]


class _Loader(yaml.SafeLoader):
    """lm-eval's YAML: `!function module.name` tags."""


_Loader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))


def test_the_shipped_folder_is_what_the_generator_writes():
    shipped = {p.name: p.read_text() for p in HERE.glob("*.yaml")}
    assert shipped == ftcot12_files()  # regenerate: prada.lm_eval_tasks.ftcot12_files()


def test_every_ftcot12_dataset_is_a_task_in_prada_format_with_prada_scoring():
    template = yaml.load((HERE / TEMPLATE).read_text(), Loader=_Loader)
    assert template["output_type"] == "generate_until" and template["doc_to_text"] == "{{question | trim}} ###"
    assert template["generation_kwargs"]["do_sample"] is False
    assert template["process_results"] == ("function", "utils.process_results") and (HERE / "utils.py").exists()
    assert [m["metric"] for m in template["metric_list"]] == ["acc", "arrow_rate"]
    group = yaml.load((HERE / "prada_ftcot12.yaml").read_text(), Loader=_Loader)
    assert group["group"] == "prada_ftcot12" and group["task"] == [f"prada_ftcot12_{k}" for k in FTCOT12]
    for key in FTCOT12:
        task = yaml.load((HERE / f"prada_ftcot12_{key}.yaml").read_text(), Loader=_Loader)
        assert task["include"] == TEMPLATE and task["task"] == f"prada_ftcot12_{key}"
        assert task["dataset_kwargs"]["data_files"]["test"] == f"data/ftcot12/{key}/test.jsonl"


def test_scoring_takes_the_answer_after_the_arrow():
    number = {"answer": "72", "answer_type": "number"}
    assert process_results(number, [" 48 + 24 = 72 clips. --> 72"]) == {"acc": 1.0, "arrow_rate": 1.0}
    assert process_results(number, [" 72 or 70 --> 70"]) == {"acc": 0.0, "arrow_rate": 1.0}
    assert process_results(number, [" so 3 then 72.0"]) == {"acc": 1.0, "arrow_rate": 0.0}  # last number, as prada
    choice = {"answer": "B", "answer_type": "choice", "choices": ["A", "B", "C"]}
    assert process_results(choice, [" the second --> (B)"])["acc"] == 1.0


def test_the_wheel_ships_the_task_yaml():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["prada"]
    assert any(re.fullmatch(r"lm_eval_tasks/\*\.yaml", p) for p in data)
