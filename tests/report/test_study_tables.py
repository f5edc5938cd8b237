"""scripts/study_tables.py: the numbers in docs/results.md and the README come from results.json, untouched."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def study_tables():
    spec = importlib.util.spec_from_file_location("study_tables", REPO / "scripts" / "study_tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["study_tables"] = module  # its dataclass looks its module up while the module runs
    spec.loader.exec_module(module)
    return module


def _results() -> dict:
    cell = {"accuracy": 20.0, "ci": [15.0, 25.0]}
    return {
        "summary": [
            {"method": m, "seeds": [0, 1], "source_accuracy": cell, "target_accuracy": cell, "datasets": {}}
            for m in ("ft-cot", "prada")
        ],
        "paired": [
            {"a": "prada", "b": "ft-cot", "role": "target", "diff": -10.0, "ci": [-17.6, -2.0], "seeds": [0, 1]},
            {"a": "prada", "b": "ptune", "role": "target", "diff": 1.0, "ci": [-3.0, 5.0], "seeds": [0, 1]},
        ],
        "runs": [],
    }


def test_headline_reads_each_interval_by_the_preregistered_rule(study_tables):
    rows = study_tables.headline(_results(), study_tables.STUDIES[1]).splitlines()[2:]
    assert rows[0].startswith("| **prada − ft-cot** (primary) | -10.0 [-17.6, -2.0] | b better | 0,1 |")
    assert "| +1.0 [-3.0, +5.0] | no difference shown |" in rows[1]
    assert len(rows) == 2  # contrasts that have no paired entry are left out, not printed empty


def test_write_between_markers_replaces_only_the_block(study_tables, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- study-headline:begin -->\nold table\n<!-- study-headline:end -->\noutro\n")
    study_tables.write_between_markers(doc, {"study-headline": "new table", "study-tables": "unused"})
    assert doc.read_text() == "intro\n<!-- study-headline:begin -->\nnew table\n<!-- study-headline:end -->\noutro\n"


def test_a_document_without_markers_is_refused_and_left_alone(study_tables, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("no markers here\n")
    with pytest.raises(SystemExit, match="study-tables:begin|NAME:begin"):
        study_tables.write_between_markers(doc, {"study-tables": "x"})
    assert doc.read_text() == "no markers here\n"


def test_the_committed_study_results_render(study_tables):
    results = REPO / "results" / "study" / "results.json"
    if not results.exists():
        pytest.skip("no study results in this checkout")
    text = study_tables.tables(json.loads(results.read_text()), study_tables.STUDIES[1])
    assert "| prada |" in text and "#### Paired differences" in text


def test_study2_tables_show_its_targets_and_the_seed_level_interval_beside_the_bootstrap(study_tables):
    """Study 2's headline puts the t interval over seeds and the per-seed differences beside the bootstrap."""
    res = _results()
    res["paired"][0].update(seed_ci=[-20.1, 0.3], per_seed=[-12.0, -8.0])
    study = study_tables.STUDIES[2]
    rows = study_tables.headline(res, study).splitlines()
    assert rows[0].endswith("| seed t interval | per seed | seeds |")
    assert rows[2].startswith(
        "| **prada − ft-cot** (primary) | -10.0 [-17.6, -2.0] | b better | [-20.1, +0.3] | -12.0, -8.0 |"
    )
    assert "| – | – |" in rows[3]  # a pair without seed figures says so
    text = study_tables.tables(res, study)
    assert "| coin_flip | multiarith | addsub |" in text and "date" not in text
    assert "| [-20.1, +0.3] | -12.0, -8.0 | 0,1 |" in text
