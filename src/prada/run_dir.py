"""The run folder: its file names, whether a run finished, and the device and precision a run uses.

Every stage that reads or writes RUN_DIR spells its files through these names:
train writes CONFIG, TRAIN_LOG, the checkpoints, the WEIGHTS, STUDENT and DONE; eval writes EVAL,
PREDICTIONS and its EVAL_CACHE; explain writes EXPLAIN/. Evaluation, explain, export and the report
import this module, not the loop.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from prada.config import RunConfig, load_config, switch_on
from prada.errors import PradaError

CONFIG = "config.yaml"  # the resolved config, written before step 0
TRAIN_LOG = "train_log.jsonl"
DONE = "train_done.json"  # written last by train: the run finished
EVAL = "eval.json"
PREDICTIONS = "predictions.jsonl"  # beside eval.json
GENERATION = "generation.json"  # beside eval.json: what that evaluation call's decoding cost (timing, not a result)
EVAL_CACHE = ".eval_cache"  # folder: eval's finished predictions, one file per cache key
EXPLAIN = "explain"  # folder: explain.json, explain.md and plots
SNAPSHOTS = "snapshots"  # folder: step-N/, the student at train.snapshot_steps, each laid out as a finished run
BEST = "best"  # folder: the student at its lowest held-out source CoT loss (train.keep_best), as a finished run
EXPLAIN_JSON = f"{EXPLAIN}/explain.json"  # written last by explain: its presence marks explain as done
CHECKPOINT = "checkpoint"  # the newest resumable checkpoint (train/checkpoint.py writes its contents)
CHECKPOINT_OLD = ".checkpoint.old"  # the previous one, during the swap
CHECKPOINT_TMP = ".checkpoint.tmp"  # the next one, being written

# The trained weights, in Hugging Face formats. save_student writes them; loading, export, eval's cache
# key (weights_fingerprint) and the damaged-file check all iterate WEIGHTS, so a part added here is
# saved, exported and fingerprinted alike.
MODEL = "model"  # folder: the full backbone (safetensors, tokenizer) where the method trains it all
LORA = "lora"  # folder: the peft LoRA adapter (backbone=lora)
PROMPT = "prompt"  # folder: the peft P-tuning adapter (prompt methods)
DOMAIN_HEAD = "domain_head.safetensors"  # the adversary's domain head
WEIGHTS = (MODEL, LORA, PROMPT, DOMAIN_HEAD)
STUDENT = "student.json"  # base model and backbone of the saved weights

TRUST_REMOTE_CODE_ENV = "PRADA_TRUST_REMOTE_CODE"


def is_finished(run_dir: Path) -> bool:
    """Whether training of the run in `run_dir` finished (its DONE file exists)."""
    return (Path(run_dir) / DONE).exists()


def finished_run_config(run_dir: Path) -> RunConfig:
    """The saved config of a run whose training finished; clear errors for anything else (eval/explain use it)."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).exists():
        raise PradaError(f"--run {run_dir}: not a run folder (no {CONFIG}); train one with `prada train`")
    if not is_finished(run_dir):
        raise PradaError(
            f"--run {run_dir}: training has not finished; continue it with `prada train --resume {run_dir}`"
        )
    return saved_run_config(run_dir)


def saved_run_config(run_dir: Path) -> RunConfig:
    """A run folder's config.yaml, which may come from someone else: its `student.trust_remote_code: true`
    counts only with the user's own PRADA_TRUST_REMOTE_CODE=1 (the model repo's code would run)."""
    cfg = load_config(Path(run_dir) / CONFIG)
    if cfg.student.trust_remote_code and os.environ.get(TRUST_REMOTE_CODE_ENV) != "1":
        raise PradaError(
            f"{Path(run_dir) / CONFIG} sets student.trust_remote_code: true, which runs code from the model "
            f"repository {cfg.student.model!r}; if you trust it, rerun with {TRUST_REMOTE_CODE_ENV}=1"
        )
    return cfg


def weight_files(run_dir: Path) -> list[Path]:
    """Every file of the run's trained weights (the WEIGHTS paths, folders one level deep), sorted."""
    run_dir = Path(run_dir)
    return sorted(
        p
        for name in WEIGHTS
        for p in ((run_dir / name).glob("*") if (run_dir / name).is_dir() else [run_dir / name])
        if p.is_file()
    )


def weights_fingerprint(run_dir: Path) -> str:
    """Names, sizes and modification times of the run's weight files: other weights, another fingerprint.

    eval keys its cache of finished predictions on it, so retrained weights are never answered from it.
    """
    run_dir = Path(run_dir)
    stats = [(str(p.relative_to(run_dir)), p.stat().st_size, p.stat().st_mtime_ns) for p in weight_files(run_dir)]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


# --- device and precision -------------------------------------------------------------------------------


def cpu_fields(cpuinfo: str | None = None) -> dict[str, str]:
    """The first CPU's `key: value` lines of /proc/cpuinfo (`cpuinfo`: its text; {} where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    lines = cpuinfo.strip().split("\n\n")[0].splitlines()
    return {key.strip(): value.strip() for key, sep, value in (line.partition(":") for line in lines) if sep}


def bf16_supported(cpuinfo: str | None = None) -> bool:
    """Whether `auto` takes bf16 autocast: a GPU that supports it, or a CPU with AMX (its bf16 matrix unit).

    An Intel CPU with avx512-bf16 but no AMX trains slower under autocast than in fp32. AMD's Zen 5 (family 26)
    trains about 2x faster under it, but prada's held-out loss there was not shown equal to fp32's (docs/scale.md),
    so `auto` keeps fp32 and `train.precision=bf16` is the user's explicit choice. `cpuinfo`: /proc/cpuinfo's text.
    """
    if cpuinfo is None and torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return "amx_bf16" in cpu_fields(cpuinfo).get("flags", "").split()


def resolve_precision(precision: str) -> str:
    """train.precision as bf16 or fp32 (auto: bf16 where it pays, `bf16_supported`)."""
    if precision == "auto":
        return "bf16" if bf16_supported() else "fp32"
    return precision


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a precision setting (None: plain fp32)."""
    return torch.bfloat16 if resolve_precision(precision) == "bf16" else None


def default_device() -> torch.device:
    """The device a run trains and evaluates on: the GPU where torch sees one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_accelerator(precision: str):
    """accelerate handles devices and processes; bf16 autocast where it pays (`bf16_supported`)."""
    from accelerate import Accelerator

    from prada.hf_compat import allow_another_mixed_precision

    mixed_precision = "bf16" if resolve_precision(precision) == "bf16" else "no"
    allow_another_mixed_precision(mixed_precision)
    # cpu=True without a GPU: under `accelerate launch --multi_gpu` / torchrun (LOCAL_RANK set) the
    # processes then join a gloo group; otherwise each would silently train alone at world size 1.
    return Accelerator(mixed_precision=mixed_precision, cpu=not torch.cuda.is_available())


def resolve_switches(cfg: RunConfig, device: torch.device | str) -> dict[str, bool]:
    """Each device switch's `auto` decided once, where the run's device is known. The booleans are passed
    down, printed in the banner and written into train_done.json and eval.json, so which path ran can be
    checked after the fact ("one program on every device")."""
    cpu = torch.device(device).type == "cpu"
    return {
        # the virtual prompt's keys/values once per step: pays where FLOPs bound the step (the CPU); checkpointed
        # layers drop the KV cache it is passed as, so never with train.gradient_checkpointing (validate refuses `on`)
        "share_prompt_prefix": switch_on(
            cfg.train.share_prompt_prefix, auto=cpu and not cfg.train.gradient_checkpointing
        ),
        # AdamW's fused kernel: faster than foreach on the CPU as on a GPU (docs/scale.md)
        "fused_adamw": switch_on(cfg.train.fused_adamw, auto=True),
        # few-row linears weight-first while decoding: measured to pay on a CPU in fp32 only
        "weight_first_linears": switch_on(
            cfg.eval.weight_first_linears, auto=cpu and resolve_precision(cfg.train.precision) == "fp32"
        ),
    }


# --- a new run's --out: empty, or a run folder prada wrote --------------------------------------------------

RUN_SECTIONS = ("method", "data", "student", "train")  # keys every config.yaml prada writes holds


def check_new_run_folder(cfg: RunConfig, out_dir: Path) -> None:
    """Refuse an --out that is not prada's run folder, or a finished run of another config; nothing is touched.

    prada writes into an existing folder only when it holds a config.yaml that prada wrote (every
    section of a run config) and no `checkpoint/` that prada did not seal (a step.json). A finished
    run of the same config is left as it is; of another config, the differing keys are named.
    """
    from prada.config import read_yaml_mapping

    out_dir = Path(out_dir)
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if not out_dir.is_dir():
        raise PradaError(f"--out {out_dir}: exists and is not a folder; give a new folder for the run")
    if all(p.name.startswith(".") and p.name.endswith(".tmp") for p in out_dir.iterdir()):
        return  # empty, or only the temp files of a run killed while writing its first file
    why = ""
    try:
        raw = read_yaml_mapping(out_dir / CONFIG, "config")
        missing = [k for k in RUN_SECTIONS if k not in raw]
        if missing:
            why = f"its {CONFIG} has no {', '.join(missing)}"
        else:
            saved = load_config(out_dir / CONFIG)
    except PradaError as e:
        why = f"{e}" if (out_dir / CONFIG).exists() else f"no {CONFIG}"
    for name in ("checkpoint", ".checkpoint.old"):
        if not why and (out_dir / name).exists() and not (out_dir / name / "step.json").is_file():
            why = f"its {name}/ has no step.json"
    if why:
        raise PradaError(
            f"--out {out_dir}: holds files prada did not write ({why}); nothing was touched. "
            "Give a new --out (or move those files away)"
        )
    if is_finished(out_dir):
        changed = config_differences(saved, cfg)
        if changed:
            raise PradaError(
                f"--out {out_dir}: already finished with another config ({'; '.join(changed[:6])}"
                f"{'; ...' if len(changed) > 6 else ''}); nothing was trained. Give a new --out for this config"
            )


def config_differences(old: RunConfig, new: RunConfig, where: tuple[str, str] = ("there", "here")) -> list[str]:
    """`key: OLD there, NEW here` for every dotted config key whose value differs (`where` names the two sides)."""
    from prada.config import config_to_dict

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b = flat(config_to_dict(old)), flat(config_to_dict(new))
    return [
        f"{k}: {a.get(k)!r} {where[0]}, {b.get(k)!r} {where[1]}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]
