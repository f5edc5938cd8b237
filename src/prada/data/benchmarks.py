"""The built-in benchmarks, one registry: datasets, cache folder name, builder and the command that builds it.

The CLI's choices, config validation (`data.benchmark`), `prepare_data` / `data_folder` and the
experiment planner read this table; a new benchmark is one entry here. `none` (custom files only) is
no benchmark: nothing is built for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from prada.data.registry import FTCOT12, DatasetInfo
from prada.data.synth import SYNTH
from prada.errors import ConfigError

if TYPE_CHECKING:
    from prada.config import DataConfig

NO_BENCHMARK = "none"  # data.benchmark of a run on custom files only


@dataclass(frozen=True)
class Benchmark:
    name: str
    datasets: dict[str, DatasetInfo]
    """Dataset key -> domain and answer type, known without building anything."""
    folder: Callable[[DataConfig], str]
    """Folder name under the data cache (`~/.cache/prada/data/`) for a config without `data.data_dir`."""
    build: Callable[..., dict]
    """`build(folder, cfg, cache_dir=None)` writes the benchmark into `folder` (`<dataset>/{train,test}.jsonl`
    and `summary.json`) and returns the summary; `cache_dir` holds downloads where there are any."""
    command: str
    """The `prada` command that builds it by hand (followed by `--out DIR`)."""


def _build_synth(folder: Path, cfg: DataConfig, cache_dir: Path | None = None) -> dict:
    from prada.data.synth import build_synth

    return build_synth(folder, seed=cfg.synth_seed)


def _build_ftcot12(folder: Path, cfg: DataConfig, cache_dir: Path | None = None) -> dict:
    from prada.data.ftcot12 import build_ftcot12

    return build_ftcot12(folder, source=cfg.source or None, cache_dir=cache_dir)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark("synth", SYNTH, lambda cfg: f"synth-seed{cfg.synth_seed}", _build_synth, "data synth"),
        Benchmark("ftcot12", FTCOT12, lambda cfg: "ftcot12", _build_ftcot12, "data build --benchmark ftcot12"),
    ]
}

DATA_BUILD = tuple(n for n, b in BENCHMARKS.items() if b.command.startswith("data build"))
"""The benchmarks `prada data build --benchmark` imports (the others have a command of their own)."""


def benchmark(name: str) -> Benchmark:
    """The registry entry of `name`; an unknown name is an error naming the known ones."""
    if name not in BENCHMARKS:
        raise ConfigError(
            f"data.benchmark: {name!r} is not one of {', '.join(BENCHMARKS)} "
            f"(or {NO_BENCHMARK}: custom files only, nothing built)"
        )
    return BENCHMARKS[name]


def known_datasets() -> dict[str, DatasetInfo]:
    """Every built-in dataset key of every benchmark."""
    return {k: info for b in BENCHMARKS.values() for k, info in b.datasets.items()}
