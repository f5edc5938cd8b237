"""data/benchmarks.py is the one registry of benchmarks: the CLI, the config and the data step read it."""

import dataclasses
import typing

import pytest

from prada.cli import build_parser
from prada.config import DataConfig, RunConfig
from prada.data.benchmarks import BENCHMARKS, DATA_BUILD, NO_BENCHMARK, benchmark, known_datasets
from prada.data.registry import FTCOT12
from prada.data.synth import SYNTH
from prada.distill.dataset import data_folder, prepare_data
from prada.errors import ConfigError


def test_the_config_and_the_cli_offer_the_registered_benchmarks():
    assert typing.get_args(typing.get_type_hints(DataConfig)["benchmark"]) == (*BENCHMARKS, NO_BENCHMARK)
    assert DATA_BUILD == ("ftcot12",)
    for name, bench in BENCHMARKS.items():  # each entry's command is one the CLI runs
        args = build_parser().parse_args([*bench.command.split(), "--out", "D"])
        assert args.handler is not None and getattr(args, "benchmark", name) == name
    assert known_datasets() == {**SYNTH, **FTCOT12}


@pytest.mark.parametrize("name", ["synthh", "gsm8k", ""])
def test_an_unknown_benchmark_is_an_error_naming_the_known_ones(tmp_path, name):
    """Every `synth ... else ...` branch used to fall through to ftcot12 and build it under the wrong name."""
    cfg = DataConfig(benchmark=name, data_dir=str(tmp_path / "data"))  # DataConfig alone is not validated
    for step in (prepare_data, data_folder, lambda c: benchmark(c.benchmark)):
        with pytest.raises(ConfigError, match="data.benchmark: .* is not one of synth, ftcot12") as e:
            step(cfg)
        assert NO_BENCHMARK in str(e.value)
    assert not (tmp_path / "data").exists()
    with pytest.raises(ConfigError, match="data.benchmark: 'synthh' is not one of synth, ftcot12, none"):
        RunConfig(data=DataConfig(benchmark="synthh"))


def test_the_data_step_builds_in_the_registered_folder_and_says_the_registered_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PRADA_CACHE", str(tmp_path))
    cfg = DataConfig(benchmark="synth", synth_seed=3)
    with pytest.raises(ConfigError, match="prada data synth --out"):
        data_folder(cfg)
    fake = dataclasses.replace(BENCHMARKS["synth"], build=lambda folder, c, cache_dir=None: folder.mkdir(parents=True))
    monkeypatch.setitem(BENCHMARKS, "synth", fake)
    assert prepare_data(cfg) == tmp_path / "data" / BENCHMARKS["synth"].folder(cfg) == tmp_path / "data" / "synth-seed3"
    with pytest.raises(ConfigError, match="prada data build --benchmark ftcot12 --out"):
        data_folder(DataConfig(benchmark="ftcot12"))
