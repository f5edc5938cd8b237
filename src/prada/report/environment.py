"""What a report's numbers were measured with: package versions, the source commit, the machine and the wall time."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from prada.run_dir import CONFIG, EVAL, cpu_fields

PACKAGES = ("torch", "transformers", "peft", "accelerate")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
"""The CPU flags that change how fast prada trains and decodes (AVX2 only, AVX-512, bf16, AMX)."""


def cpu_speed_flags() -> list[str]:
    """The SPEED_FLAGS this CPU has (Linux /proc/cpuinfo; empty elsewhere)."""
    flags = set(cpu_fields().get("flags", "").split())
    return [f for f in SPEED_FLAGS if f in flags]


def cpu_model() -> str:
    """The CPU's model name with its family and model numbers (Linux /proc/cpuinfo: a bare "AMD EPYC" says
    neither Zen 4 nor Zen 5), else the platform's processor string."""
    cpu = cpu_fields()
    if "model name" not in cpu:
        return platform.processor() or "unknown"
    numbers = ", ".join(f"{key} {cpu[key]}" for key in ("cpu family", "model") if key in cpu)
    return f"{cpu['model name']} ({numbers})" if numbers else cpu["model name"]


def source_commit() -> str | None:
    """The git commit of the prada sources in use (`+dirty` with uncommitted changes), or None outside a checkout."""
    src = Path(__file__).resolve().parents[3]  # src/prada/report/ -> the repository root
    if not (src / ".git").exists():
        return None
    try:
        git = ["git", "-C", str(src)]
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def runs_wall_time(run_dirs: list[Path]) -> float | None:
    """Seconds from the first run's config.yaml to the last eval.json (file times): training and evaluation of
    every run, including any pause between sessions; None when a file is missing."""
    try:
        start = min((Path(d) / CONFIG).stat().st_mtime for d in run_dirs)
        end = max((Path(d) / EVAL).stat().st_mtime for d in run_dirs)
    except (OSError, ValueError):
        return None
    return round(max(0.0, end - start), 1)


def environment(run_dirs: list[Path]) -> dict:
    """The `environment` entry of results.json."""
    from prada import __version__

    return {
        "prada": __version__,
        "commit": source_commit(),
        "python": platform.python_version(),
        **{name: _version(name) for name in PACKAGES},
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "wall_time_s": runs_wall_time(run_dirs),
        "wall_time_is": "first run's config.yaml to last eval.json, by file times",
    }


def describe(env: dict) -> str:
    """One report line naming the versions, commit and wall time."""
    if not env:
        return ""
    versions = ", ".join(f"{name} {env[name]}" for name in PACKAGES if env.get(name))
    commit = env.get("commit") or "not a git checkout"
    wall = env.get("wall_time_s")
    if wall is None:
        time = "unknown"
    else:
        h, rest = divmod(int(round(wall)), 3600)
        time = f"{h}:{rest // 60:02d}:{rest % 60:02d}"
    return (
        f"Environment: prada {env.get('prada')} (commit {commit}), Python {env.get('python')}, {versions}; "
        f"{env.get('machine')}. Wall time {time} ({env.get('wall_time_is')})."
    )
