"""A stage imports only the stages before it (STYLE.md 1): checked on every `import` in src/prada."""

import ast
from pathlib import Path

import pytest

import prada

SRC = Path(prada.__file__).parent

# package -> prada modules it must not import (higher stages, or the loop's internals)
FORBIDDEN = {
    "data": ("prada.teacher", "prada.distill", "prada.methods", "prada.train", "prada.evaluation", "prada.report"),
    "teacher": ("prada.distill", "prada.methods", "prada.train", "prada.evaluation", "prada.report"),
    "distill": ("prada.methods", "prada.train", "prada.evaluation", "prada.report"),
    "evaluation": ("prada.train.loop", "prada.report", "prada.experiment"),
    "report": ("prada.train.loop", "prada.experiment"),
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_stage_imports_a_later_one():
    leaks = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((SRC / package).rglob("*.py")):
            for name in sorted(_imports(path)):
                if any(name == f or name.startswith(f + ".") for f in forbidden):
                    leaks.append(f"{path.relative_to(SRC)} imports {name}")
    assert leaks == []


def test_shared_modules_sit_below_every_stage():
    for module in ("answers.py", "prompts.py", "io.py", "hf_compat.py", "model_aliases.py"):
        stages = {n for n in _imports(SRC / module) if n.startswith("prada.")}
        assert stages <= {"prada.errors", "prada.answers", "prada.io"}, (module, stages)


def test_loading_data_only_reads_and_preparing_builds(tmp_path):
    from prada.config import DataConfig
    from prada.distill.dataset import load_distillation_set, prepare_data
    from prada.errors import ConfigError

    cfg = DataConfig(benchmark="synth", data_dir=str(tmp_path / "synth"), target_domains=["other"])
    with pytest.raises(ConfigError, match="not built there yet.*prada data synth"):
        load_distillation_set(cfg)  # an unbuilt benchmark: loading never builds it
    assert not (tmp_path / "synth").exists()
    assert prepare_data(cfg) == tmp_path / "synth" and (tmp_path / "synth" / "summary.json").exists()
    assert load_distillation_set(cfg).target_domains == ["other"]
