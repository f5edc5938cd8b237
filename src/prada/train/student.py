"""The student: a causal LM, an optional continuous prompt and an optional adversary behind one seam.

`Student.forward(source, target, lam, share)` returns `(losses, metrics)`: the loop sums the losses
dict and backpropagates it, and averages the metrics for the log. A new loss term is one more entry
in `losses`, never a loop edit; methods only change which parts exist (see methods/registry.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from prada.config import RunConfig
from prada.distill.collate import Batch
from prada.errors import PradaError
from prada.hf_compat import cache_keyword, cache_layers, new_cache, save_tokenizer
from prada.io import atomic_write_json, normal_permissions, refuse_links
from prada.methods.adversary import Adversary
from prada.methods.prompt import ContinuousPrompt, FrozenPrompt
from prada.methods.registry import method_spec
from prada.model_aliases import resolve_model
from prada.run_dir import (
    DOMAIN_HEAD,
    LORA,
    MODEL,
    PROMPT,
    STUDENT,
    WEIGHTS,
    default_device,
    resolve_switches,
    weight_files,
)
from prada.train.backbones import (
    enable_gradient_checkpointing,
    load_causal_lm,
    load_tokenizer,
    lora_target_modules,
)
from prada.train.lm_loss import linear_cross_entropy, token_loss


class _StopForward(Exception):
    """Raised by a forward hook to end a pass whose remaining layers nothing reads."""


def feature_state_index(layer: int, num_layers: int, model: str = "the model") -> int:
    """`adversary.layer` as an index into the num_layers + 1 hidden states (0: embeddings, num_layers: the top)."""
    if not -(num_layers + 1) <= layer <= num_layers:
        raise PradaError(
            f"adversary.layer={layer}: {model} has {num_layers} decoder layers, "
            f"so its hidden states are 0..{num_layers} (or -1..-{num_layers + 1} from the top)"
        )
    return layer % (num_layers + 1)


def decoder_layers(lm: nn.Module) -> nn.ModuleList | None:
    """The stack of decoder layers (any architecture, LoRA-wrapped too): the ModuleList of num_hidden_layers modules."""
    n = getattr(lm.config, "num_hidden_layers", None)
    return next((m for m in lm.modules() if isinstance(m, nn.ModuleList) and len(m) == n), None)


_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")  # Gemma-2/3, Cohere, Granite


@torch.no_grad()
def head_gives_logits(lm: nn.Module) -> bool:
    """Whether the output embedding applied to the last hidden state gives the model's own logits.

    The CoT loss applies the head only where a label is (`linear_cross_entropy`). Some models change
    the head's output first (Gemma-2/3 soft-cap it, Granite and Cohere scale it); for them that loss
    would train a distribution the model never samples from, so the student takes the model's logits.
    """
    # known transforms by their config keys (a random model's small logits pass a soft-cap almost unchanged) ...
    if any(getattr(lm.config, key, None) not in (None, 1, 1.0) for key in _LOGIT_TRANSFORMS):
        return False
    # ... and any other, by comparing with the model's own output
    device = next(lm.parameters()).device
    out = lm(input_ids=torch.arange(4, device=device)[None], output_hidden_states=True)
    mine = lm.get_output_embeddings()(out.hidden_states[-1])
    return mine.shape == out.logits.shape and torch.allclose(mine.float(), out.logits.float(), rtol=1e-4, atol=1e-5)


@dataclass(frozen=True)
class StepShare:
    """What one micro-batch's losses are divided by, so that their sum over a step is the step's mean.

    Token losses (the CoT cross-entropy) are summed over tokens and divided by `label_tokens`: the
    label tokens of the whole optimizer step, every micro-batch of every process, divided by the
    number of processes (data parallelism averages gradients over processes). So every label token
    of a step weighs the same, however the length-grouped micro-batches split them (torchtune's
    recipes scale by 1/num_tokens the same way). Per-example losses (the domain loss) are micro-batch
    means divided by `micro_batches`; when a micro-batch's source rows run as several length groups
    (`train.split_by_length`), each group's source mean also weighs `source_rows`, its share of the rows.
    """

    label_tokens: float
    micro_batches: int = 1
    source_rows: float = 1.0


@dataclass
class Pass:
    """What one forward pass of a batch gives the loss parts (real-token positions only)."""

    features: torch.Tensor | None = None  # (B, T, D) at adversary.layer, with an adversary
    top: torch.Tensor | None = None  # (B, T, D) the last hidden state, when a loss reads it
    logits: torch.Tensor | None = None  # (B, T, V) the model's own logits, where its head transforms them


def token_cross_entropy(
    p: Pass, labels: torch.Tensor, keep: torch.Tensor, head: nn.Module | None, dft: bool = False
) -> torch.Tensor:
    """Mean next-token cross-entropy where `keep`: the head applied only there (no full-vocabulary logits), or
    the model's own logits where it transforms its head's output (see head_gives_logits)."""
    if head is not None:
        return linear_cross_entropy(p.top[:, :-1][keep], head, labels[keep], dft=dft)
    return token_loss(p.logits[:, :-1][keep], labels[keep], dft)


def cot_loss(p: Pass, batch: Batch, head: nn.Module | None, dft: bool = False) -> torch.Tensor:
    """L_y: the CoT cross-entropy on the target tokens (` {rationale} --> {answer}` + EOS), a mean over them
    (train.loss: ce; or dft, each token weighted by its detached probability)."""
    labels = batch.labels[:, 1:]
    return token_cross_entropy(p, labels, labels != -100, head, dft)


def question_lm_loss(p: Pass, batch: Batch, head: nn.Module | None) -> torch.Tensor:
    """Next-token cross-entropy over the real tokens of unlabelled questions (`{q} ###`): the target LM loss."""
    return token_cross_entropy(p, batch.input_ids[:, 1:], batch.attention_mask[:, 1:].bool(), head)


def domain_loss(
    adv: Adversary, src: Pass, source: Batch, tgt: Pass | None, target: Batch | None, lam: float, share: StepShare
) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, float]]]:
    """L_d on source (+ target) question features, behind the GRL or the confusion loss; and its metrics.

    Source figures weigh their micro-batch part's share of the rows; target figures come from the one
    part that carries the target batch (weight 1).
    """
    rows = share.source_rows
    loss, s = adv.loss(*adv.features(src.features, source.question_mask, source.domain), lam)
    loss = loss * rows
    metrics = {
        "domain_ce_source": (s["ce"], rows),
        "domain_acc_source": (s["acc"], rows),
        "domain_acc": (s["acc"], rows),
    }
    classes = adv.classes(source.domain)
    if tgt is not None:
        t_loss, t = adv.loss(*adv.features(tgt.features, target.question_mask, target.domain), lam)
        loss = loss + t_loss
        metrics.update(
            domain_ce_target=(t["ce"], 1.0),
            domain_acc_target=(t["acc"], 1.0),
            domain_acc=((s["acc"] + t["acc"]) / 2, rows),
        )
        classes = torch.cat([classes, adv.classes(target.domain)])
    counts = torch.bincount(classes, minlength=adv.num_classes)
    metrics["domain_acc_majority"] = ((counts.max() / counts.sum()).float(), rows)  # a head that always says one class
    metrics["domain_ce_chance"] = (torch.tensor(math.log(adv.num_classes)), rows)  # a head that knows nothing
    return loss / share.micro_batches, metrics


class Student(nn.Module):
    def __init__(
        self,
        lm: nn.Module,
        prompt: nn.Module | None = None,
        adversary: Adversary | None = None,
        share_prompt_prefix: bool = False,
    ):
        super().__init__()
        self.lm = lm
        self.target_lm_weight = 0.0  # ft-cot-tlm sets it (train.target_lm_weight)
        self.dft = False  # train.loss: dft
        self.prompt = prompt
        self.adversary = adversary
        self.head_gives_logits = head_gives_logits(lm)
        self.share_prompt_prefix = (
            share_prompt_prefix  # train.share_prompt_prefix as resolved (run_dir.resolve_switches)
        )

    @property
    def wants_target(self) -> bool:
        """Whether a step also takes a batch of unlabelled target questions (adversary or target LM loss)."""
        return self.adversary is not None or bool(self.target_lm_weight)

    @property
    def num_virtual_tokens(self) -> int:
        return 0 if self.prompt is None else self.prompt.num_virtual_tokens

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings with the virtual prompt prepended: (B, V+T, D) and mask (B, V+T)."""
        embeds = self.lm.get_input_embeddings()(input_ids)
        if self.prompt is None:
            return embeds, attention_mask
        B = input_ids.shape[0]
        virtual = self.prompt(B).to(embeds.dtype)
        ones = attention_mask.new_ones((B, self.num_virtual_tokens))
        return torch.cat([virtual, embeds], 1), torch.cat([ones, attention_mask], 1)

    def prompt_prefix(self) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """Keys and values of the virtual prompt at every layer, computed once at batch size 1.

        The virtual tokens come first and attend only to each other, so their states are the same in
        every row. One pass over them per step, shared by the source and the target batch, replaces
        B + B_target passes (the prompt is V of every row's positions: ~8% of a 256-token row at V=20).
        """
        if self.prompt is None:
            return None
        virtual = self.prompt(1).to(self.lm.get_input_embeddings().weight.dtype)
        # a cache of our own, filled in place: some releases' models make none in training mode (Gemma-2, 4.57)
        cache = new_cache(self.lm.config)
        self.lm(inputs_embeds=virtual, use_cache=True, logits_to_keep=1, **{cache_keyword(self.lm): cache})
        return cache_layers(cache)

    def _lm_inputs(self, batch: Batch, prefix: list[tuple[torch.Tensor, torch.Tensor]] | None) -> tuple[dict, int]:
        """Keyword arguments of the LM call for `batch`, and how many leading (virtual) positions its states carry.

        With `prefix` (from `prompt_prefix`) the prompt's keys and values are the KV cache; without
        it the prompt's embeddings are prepended to every row and their positions sliced off later.
        """
        if self.prompt is None or prefix is None:
            embeds, mask = self.embed(batch.input_ids, batch.attention_mask)
            return {"inputs_embeds": embeds, "attention_mask": mask}, self.num_virtual_tokens
        B = batch.input_ids.shape[0]
        cache = new_cache(self.lm.config, [(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in prefix])
        mask = torch.cat([batch.attention_mask.new_ones((B, self.num_virtual_tokens)), batch.attention_mask], 1)
        return {
            "inputs_embeds": self.lm.get_input_embeddings()(batch.input_ids),
            "attention_mask": mask,
            "use_cache": True,
            cache_keyword(self.lm): cache,
        }, 0

    def hidden_states(
        self, batch: Batch, prefix: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    ) -> tuple[torch.Tensor, ...]:
        """All layers' hidden states of the real tokens (never the virtual positions): each (B, T, D)."""
        return self._states_and_logits(batch, prefix, logits=False)[0]

    def _states_and_logits(
        self, batch: Batch, prefix: list[tuple[torch.Tensor, torch.Tensor]] | None, logits: bool
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
        """Hidden states of the real tokens and, when asked, the model's logits there (B, T, vocab)."""
        kwargs, skip = self._lm_inputs(batch, prefix)
        out = self.lm(**kwargs, output_hidden_states=True, logits_to_keep=0 if logits else 1)
        return tuple(h[:, skip:] for h in out.hidden_states), out.logits[:, skip:] if logits else None

    def layer_states(
        self, batch: Batch, layer: int, prefix: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    ) -> torch.Tensor:
        """`hidden_states(batch, prefix)[layer]` without running the decoder layers above `layer`.

        The target pass needs nothing but the domain features, so with `adversary.layer` below the top
        it stops there: its forward and backward cost that fraction of the backbone. The top state
        (after the final norm) and models whose decoder layers are not found take the full pass.
        """
        layers = decoder_layers(self.lm)
        index = feature_state_index(layer, len(layers)) if layers is not None else None
        if index is None or index == len(layers):  # unknown layout, or the top state (after the final norm)
            return self.hidden_states(batch, prefix)[layer]
        kwargs, skip = self._lm_inputs(batch, prefix)
        if index == 0:
            return kwargs["inputs_embeds"][:, skip:]
        captured: list[torch.Tensor] = []

        def stop(module: nn.Module, args: tuple, output) -> None:
            captured.append(output[0] if isinstance(output, tuple) else output)
            raise _StopForward

        handle = layers[index - 1].register_forward_hook(stop)
        try:
            self.lm(**kwargs, logits_to_keep=1)
        except _StopForward:
            pass
        finally:
            handle.remove()
        return captured[0][:, skip:]

    def forward(
        self, source: Batch, target: Batch | None = None, lam: float = 0.0, share: StepShare | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, float]]]:
        """(losses, metrics) of one micro-batch, one line per loss part.

        losses: name -> this micro-batch's share of the step's loss (`StepShare`); the loop sums them and
        backpropagates. Without `share` the batch is the whole step (lm_loss: its mean over label tokens).
        metrics: name -> (value, weight); the log shows each one's weighted mean over a step's parts.
        """
        # the virtual prompt's keys and values once per step, shared by both batches (train.share_prompt_prefix)
        prefix = self.prompt_prefix() if self.prompt is not None and self.share_prompt_prefix else None
        src = self.run_pass(source, prefix, top=True)
        tgt = self.run_pass(target, prefix, top=self.target_lm_weight > 0) if self.wants_target and target else None
        share = share or StepShare(label_tokens=source.num_target_tokens)
        losses: dict[str, torch.Tensor] = {}
        metrics: dict[str, tuple[torch.Tensor, float]] = {}
        losses["lm_loss"] = cot_loss(src, source, self.head(), self.dft) * (
            source.num_target_tokens / share.label_tokens
        )
        if self.target_lm_weight and tgt is not None:  # ft-cot-tlm, prada-tlm
            losses["target_lm_loss"] = (
                self.target_lm_weight * question_lm_loss(tgt, target, self.head()) / share.micro_batches
            )
        if self.adversary is not None:  # dann, prada, prada-tlm
            losses["domain_loss"], adversary_metrics = domain_loss(self.adversary, src, source, tgt, target, lam, share)
            metrics.update(adversary_metrics)
        return losses, metrics

    def head(self) -> nn.Module | None:
        """The output embedding the CoT losses apply where a label is, or None where they read the model's logits."""
        return self.lm.get_output_embeddings() if self.head_gives_logits else None

    def run_pass(
        self, batch: Batch | None, prefix: list[tuple[torch.Tensor, torch.Tensor]] | None, top: bool
    ) -> Pass | None:
        """One forward pass of `batch` with what any loss part reads: the top state (and the model's logits where
        the head's output is transformed) when `top`, the adversary's feature layer whenever there is an adversary.
        Without `top` the pass stops at the feature layer (the target batch of dann and prada)."""
        if batch is None or batch.input_ids.numel() == 0:
            return None
        layer = self.adversary.layer if self.adversary is not None else None
        if not top:
            return Pass(features=self.layer_states(batch, layer, prefix) if layer is not None else None)
        states, logits = self._states_and_logits(batch, prefix, logits=not self.head_gives_logits)
        return Pass(features=states[layer] if layer is not None else None, top=states[-1], logits=logits)

    def question_lm_loss(
        self, batch: Batch, prefix: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    ) -> torch.Tensor:
        """Mean next-token cross-entropy over the real tokens of a question-only batch (`{q} ###`)."""
        return question_lm_loss(self.run_pass(batch, prefix, top=True), batch, self.head())

    def param_groups(self, cfg: RunConfig) -> list[dict]:
        """Optimizer groups: backbone, prompt and adversary each at their own learning rate."""
        parts = [
            (self.lm, cfg.train.lr, cfg.train.weight_decay),
            (self.prompt, cfg.prompt.lr, 0.0),
            (self.adversary, cfg.adversary.lr, 0.0),
        ]
        groups = []
        for name, (module, lr, wd) in zip(("backbone", "prompt", "adversary"), parts):
            params = [p for p in module.parameters() if p.requires_grad] if module is not None else []
            if params:
                groups.append({"name": name, "params": params, "lr": lr, "base_lr": lr, "weight_decay": wd})
        return groups


def build_student(
    cfg: RunConfig, num_domains: int, classes: list[int] | None = None, switches: dict[str, bool] | None = None
) -> tuple[Student, object]:
    """Load the backbone named by the config and attach the parts its method declares.

    `classes`: the domain head's class of each domain index (`domain_classes`; None: one class a domain).
    `switches`: the run's resolved device switches (None: resolved for the default device).
    """
    spec = method_spec(cfg.method)
    path = resolve_model(cfg.student.model)
    tokenizer = load_tokenizer(path, cfg.student.trust_remote_code)
    torch.manual_seed(cfg.seed)
    lm = load_causal_lm(path, cfg.student.trust_remote_code)
    lm.config.use_cache = False
    if cfg.train.gradient_checkpointing:  # on the base model, before any LoRA wrapper
        enable_gradient_checkpointing(lm, cfg.student.model)
    backbone = cfg.backbone
    if backbone == "lora":
        from peft import LoraConfig, get_peft_model

        lm = get_peft_model(
            lm,
            LoraConfig(
                r=cfg.lora.r,
                lora_alpha=cfg.lora.alpha,
                lora_dropout=cfg.lora.dropout,
                target_modules=lora_target_modules(lm, cfg.lora.target_modules),
                task_type="CAUSAL_LM",
            ),
        )
    else:
        lm.requires_grad_(backbone == "full")
    if cfg.train.freeze_embeddings:
        for table in (lm.get_input_embeddings(), lm.get_output_embeddings()):
            if table is not None:
                table.requires_grad_(False)
    dim = lm.get_input_embeddings().weight.shape[1]
    prompt = (
        ContinuousPrompt(dim, cfg.prompt.num_virtual_tokens, cfg.prompt.encoder, cfg.prompt.encoder_hidden_size)
        if spec.prompt
        else None
    )
    adversary = None
    if spec.adversary:
        feature_state_index(
            cfg.adversary.layer, lm.config.num_hidden_layers, cfg.student.model
        )  # a clear error now, not at step 1
        a = cfg.adversary
        adversary = Adversary(dim, num_domains, a.hidden_size, a.layer, a.head, a.loss, a.pooling, classes)
    switches = switches if switches is not None else resolve_switches(cfg, default_device())
    student = Student(lm, prompt, adversary, switches["share_prompt_prefix"])
    student.target_lm_weight = cfg.train.target_lm_weight if spec.target_lm else 0.0
    student.dft = cfg.train.loss == "dft"
    return student, tokenizer


# --- saving and loading in Hugging Face formats ------------------------------------------------------


def save_student(student: Student, tokenizer, cfg: RunConfig, run_dir: Path) -> None:
    """HF folders: model/ (full backbone, safetensors), lora/ (peft adapter), prompt/ (peft P-tuning adapter)."""
    # save_pretrained writes through a linked folder and deletes the shard files it finds there
    refuse_links(*(run_dir / name for name in (*WEIGHTS, STUDENT)))
    base = resolve_model(cfg.student.model)
    backbone = cfg.backbone
    prompt_base = base  # the prompt adapter's base: the trained weights where they exist, relative to prompt/
    if method_spec(cfg.method).train and backbone == "full":
        student.lm.config.use_cache = True  # off for training only; a user's generate needs it
        student.lm.save_pretrained(str(run_dir / MODEL), safe_serialization=True)
        student.lm.config.use_cache = False
        save_tokenizer(tokenizer, run_dir / MODEL)
        prompt_base = f"../{MODEL}"
    elif backbone == "lora":
        student.lm.save_pretrained(str(run_dir / LORA))
        prompt_base = f"../{LORA}"
    if isinstance(student.prompt, ContinuousPrompt):
        student.prompt.save_peft_adapter(run_dir / PROMPT, prompt_base)
    if student.adversary is not None:
        save_file(
            {k: v.contiguous() for k, v in student.adversary.state_dict().items()},
            str(run_dir / DOMAIN_HEAD),
        )
    atomic_write_json(run_dir / STUDENT, {"base_model": base, "backbone": backbone})
    normal_permissions(*(run_dir / name for name in WEIGHTS))


def load_student(run_dir: Path, cfg: RunConfig) -> tuple[Student, object]:
    """Rebuild a trained student for evaluation from a run folder (no adversary needed).

    Damaged weight files are one PradaError naming the first file whose safetensors header is broken.
    """
    from safetensors import SafetensorError

    try:
        return _load_student(Path(run_dir), cfg)
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as e:
        broken = next((str(p) for p in _weight_files(Path(run_dir)) if not _readable(p)), str(run_dir))
        raise PradaError(
            f"{broken}: cannot read the trained weights ({type(e).__name__}); the run folder is damaged: "
            f"delete {run_dir} and train it again"
        ) from None


def _weight_files(run_dir: Path) -> list[Path]:
    return [p for p in weight_files(run_dir) if p.suffix == ".safetensors"]


def _readable(path: Path) -> bool:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:  # parses the header and checks it covers the file
            f.keys()
        return True
    except (SafetensorError, OSError):
        return False


def _load_student(run_dir: Path, cfg: RunConfig) -> tuple[Student, object]:
    base = resolve_model(cfg.student.model)
    weights = run_dir / MODEL if (run_dir / MODEL / "config.json").exists() else Path(base)
    lm = load_causal_lm(str(weights), cfg.student.trust_remote_code)
    tokenizer = load_tokenizer(str(weights) if weights != Path(base) else base, cfg.student.trust_remote_code)
    if (run_dir / LORA).exists():
        from peft import PeftModel

        lm = PeftModel.from_pretrained(lm, str(run_dir / LORA)).merge_and_unload()
    prompt = None
    if (run_dir / PROMPT / "adapter_model.safetensors").exists():
        prompt = FrozenPrompt(load_file(str(run_dir / PROMPT / "adapter_model.safetensors"))["prompt_embeddings"])
    student = Student(lm, prompt, None)
    student.eval()
    return student, tokenizer
