"""train_log.jsonl: one line per logged step, appended and fsync'd; trimmed back to the checkpoint on resume."""

from __future__ import annotations

from pathlib import Path

from prada.io import append_jsonl, atomic_write_jsonl, read_jsonl_tolerant

LOG_FIELDS = ("step", "lm_loss", "domain_loss", "lambda", "domain_acc", "lr", "tokens_per_s")


def _step(row: dict) -> float:
    """A line's step; a damaged line (no integer step) sorts after every checkpoint, so it is dropped."""
    step = row.get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) else float("inf")


class TrainLog:
    def __init__(self, path: Path, trackers: "Trackers | None" = None, enabled: bool = True):
        self.path = path
        self.trackers = trackers
        self.enabled = enabled  # False on the other ranks of a launch: only the main process writes the log

    def write(self, row: dict) -> None:
        """The fields every line has (LOG_FIELDS, null where a method has none), then every other figure of the row."""
        if not self.enabled:
            return
        append_jsonl(self.path, {**{k: row.get(k) for k in LOG_FIELDS}, **row})
        if self.trackers is not None:
            self.trackers.log(row)

    def close(self) -> None:
        if self.trackers is not None:
            self.trackers.close()

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after the checkpoint we resume from, so the log has no duplicates."""
        if not self.enabled:
            return
        rows = [r for r in read_jsonl_tolerant(self.path) if _step(r) <= step]
        atomic_write_jsonl(self.path, rows)

    def rows(self) -> list[dict]:
        return read_jsonl_tolerant(self.path)


class Trackers:
    """accelerate's experiment trackers (`train.log_with`), fed every row the loop logs (eval rows too).

    Built on the main process only; files of the trackers that write locally go to `logging_dir`.
    """

    def __init__(self, names: list[str], run_name: str, logging_dir: Path, config: dict):
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        from prada.errors import ConfigError

        self.trackers = []
        for name in names:
            cls = LOGGER_TYPE_TO_CLASS[name]
            tracker = cls(run_name, str(logging_dir)) if cls.requires_logging_directory else cls(run_name)
            try:
                tracker.start()
            except ImportError as e:  # the tracker's own package is not installed
                raise ConfigError(f"train.log_with: {name} needs its package ({e}); pip install {name}") from None
            tracker.store_init_configuration(flat_config(config))
            self.trackers.append(tracker)

    def log(self, row: dict) -> None:
        """Every number of the row except the step, at that step."""
        values = {k: v for k, v in row.items() if k != "step" and _is_number(v)}
        for tracker in self.trackers:
            tracker.log(values, step=row["step"])

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def flat_config(config: dict, prefix: str = "") -> dict:
    """A nested config as dotted keys with scalar values (lists as text), which every tracker stores."""
    flat = {}
    for k, v in config.items():
        if isinstance(v, dict):
            flat.update(flat_config(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v if isinstance(v, (bool, int, float, str)) or v is None else str(v)
    return flat


def start_banner(cfg, world: int, device, precision: str, steps: int, n_items: int, n_targets: int) -> str:
    """The lines `prada train` prints before step 1: what runs where, and the batch it really trains on."""
    per_step = cfg.train.batch_size * cfg.train.grad_accum
    accum = f" x {cfg.train.grad_accum} accumulation" if cfg.train.grad_accum > 1 else ""
    lines = [
        f"prada train: method {cfg.method}, student {cfg.student.model} ({cfg.backbone} backbone)",
        f"  {world} process{'es' if world > 1 else ''} x batch {cfg.train.batch_size}{accum} = global batch "
        f"{world * per_step}; device {device}, precision {precision}",
        f"  {steps} steps over {n_items} training targets"
        + (f", {n_targets} unlabelled target questions" if n_targets else ""),
    ]
    if cfg.train.log_with:
        lines.append(f"  logging to {', '.join(cfg.train.log_with)}")
    return "\n".join(lines)


def log_row(
    step: int, lam: float | None, lr: float, tokens_per_s: float, grad_norms: dict, means: dict, heldout: dict
) -> dict:
    """One train_log.jsonl line: `lambda` is null for a method without target questions."""
    norms = {k: None if v is None else float(v) for k, v in grad_norms.items()}
    return {"step": step, "lambda": lam, "lr": lr, "tokens_per_s": tokens_per_s, **norms, **means, **heldout}
