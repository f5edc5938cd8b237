"""`prada export`: a finished run -> a folder a user can ship and load without prada.

The folder holds plain Hugging Face weights (LoRA merged in), a generation config and a tokenizer
that reproduce `prada eval` (greedy, its token budget, its prompt format as the chat template), for
prompt methods a peft P-tuning adapter in `prompt/` whose base is that folder, and a model card
(README.md) with the method, teacher, data, the eval table, the format and tested loading recipes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from prada import __version__
from prada.distill.format import ANSWER_SEPARATOR, format_input
from prada.errors import PradaError
from prada.hf_compat import save_tokenizer
from prada.io import atomic_write_json, atomic_write_text, normal_permissions
from prada.methods.registry import method_spec
from prada.run_dir import EVAL

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
PROMPT_ADAPTER = "prompt"
BASE_OF_ADAPTER = ".."  # prompt/ sits inside the model folder it belongs to


def export_run(run_dir: Path, out: Path, dtype: str = "fp32") -> Path:
    """Write the shippable folder `out` for the finished run `run_dir` (atomically: built aside, then renamed)."""
    from prada.run_dir import finished_run_config
    from prada.train.student import load_student

    run_dir, out = Path(run_dir), Path(out)
    cfg = finished_run_config(run_dir)
    spec = method_spec(cfg.method)
    if not getattr(spec, "model", True):
        raise PradaError(f"--run {run_dir}: method {cfg.method} has no model to export")
    if dtype not in DTYPES:
        raise PradaError(f"--dtype {dtype}: choose one of {', '.join(DTYPES)}")
    if out.is_symlink():  # checked before the work, not when the rename fails after it
        raise PradaError(f"--out {out}: is a symbolic link; give the real folder (or a new one)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PradaError(f"--out {out}: exists and is not empty; pick a new folder or delete it")
    student, tokenizer = load_student(run_dir, cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    # a temp folder of this export alone: a second export to the same --out (or a user's folder named like
    # the old fixed temp name) is never deleted or mixed in
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
    try:
        _export_into(tmp, run_dir, cfg, spec, student, tokenizer, dtype)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # ENOSPC, Ctrl-C, a lost race: no temp folder is left
        raise
    return out


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished temp folder to `out` in one step; a folder another export put there meanwhile is kept."""
    import errno

    try:
        os.rename(tmp, out)  # replaces an empty folder only
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise
        raise PradaError(
            f"--out {out}: was filled by something else (another `prada export`?) while this export ran; "
            "it is left as it is. Export again to a new folder"
        ) from None


def _export_into(tmp: Path, run_dir: Path, cfg, spec, student, tokenizer, dtype: str) -> None:
    """Every file of the export into the (new, empty) folder tmp."""
    template = format_input("{question}", spec.prompt_style)
    budget = _eval_budget(run_dir, cfg, tokenizer)
    limit = cfg.student.max_length - 1  # prompt tokens prada eval keeps (training kept as many)

    # --- weights and generation defaults: what `prada eval` does, so a plain `generate` reproduces it
    lm = student.lm.to(DTYPES[dtype])
    lm.config.use_cache = True  # training switched it off; generation needs it
    from transformers import GenerationConfig

    lm.generation_config = GenerationConfig(
        do_sample=False,
        max_new_tokens=budget,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    lm.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.chat_template = chat_template(tokenizer, template)
    save_tokenizer(tokenizer, tmp)
    if student.prompt is not None:
        _write_prompt_adapter(run_dir / PROMPT_ADAPTER, student.prompt.embeddings, tmp / PROMPT_ADAPTER)
    atomic_write_json(
        tmp / "prada.json",
        {
            "method": cfg.method,
            "student": cfg.student.model,
            "prompt_format": template,
            "answer_separator": ANSWER_SEPARATOR,
            "num_virtual_tokens": student.num_virtual_tokens,
            "max_new_tokens": budget,
            "max_prompt_tokens": limit,
            "dtype": dtype,
            "prada_version": __version__,
        },
    )
    atomic_write_text(
        tmp / "README.md", model_card(run_dir, cfg, template, student.num_virtual_tokens, dtype, budget, limit)
    )
    normal_permissions(tmp)


def chat_template(tokenizer, template: str) -> str:
    """A chat template that renders the last user message in the training format, and nothing else.

    The student never saw the base model's chat markup; a template that adds it would change every
    output. BOS is written only when the tokenizer itself adds one (so both routes give the same ids).
    """
    bos = tokenizer.bos_token is not None and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    before, after = template.split("{question}")
    text = "{{ " + json.dumps(before) + " }}{{ messages[-1]['content'] | trim }}{{ " + json.dumps(after) + " }}"
    return ("{{ bos_token }}" if bos else "") + text


def _write_prompt_adapter(source: Path, embeddings: torch.Tensor, folder: Path) -> None:
    """The run's peft P-tuning adapter, based on the exported folder itself (relative), not on the untrained model."""
    config = json.loads((source / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = BASE_OF_ADAPTER
    folder.mkdir()
    atomic_write_json(folder / "adapter_config.json", config)
    save_file(
        {"prompt_embeddings": embeddings.detach().float().contiguous()}, str(folder / "adapter_model.safetensors")
    )


# --- the model card -------------------------------------------------------------------------------


def _eval_budget(run_dir: Path, cfg, tokenizer) -> int:
    """The token budget `prada eval` used (eval.json), or would use."""
    from prada.evaluation.evaluate import generation_budget

    path = run_dir / "eval.json"
    saved = json.loads(path.read_text(encoding="utf-8")).get("max_new_tokens") if path.exists() else None
    return int(saved) if saved else generation_budget(cfg, tokenizer)


def recipe_transformers(template: str, limit: int) -> str:
    """Python that loads a folder without a prompt and generates what `prada eval` generates."""
    return f"""import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

folder = "path/to/this/folder"
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder).eval()
PROMPT = {template!r}
MAX_PROMPT_TOKENS = {limit}  # prada eval keeps a question's first tokens, as training did


@torch.no_grad()
def generate(question: str) -> str:
    ids = tokenizer(PROMPT.format(question=question.strip()), return_tensors="pt").input_ids[:, :MAX_PROMPT_TOKENS]
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids))  # greedy, budget and EOS: generation_config.json
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
"""


def recipe_peft(template: str, limit: int) -> str:
    """Python that loads a folder with a prompt adapter (transformers + peft) and generates what `prada eval` does."""
    return f"""import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

folder = "path/to/this/folder"
tokenizer = AutoTokenizer.from_pretrained(folder)
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder), f"{{folder}}/prompt").eval()
PROMPT = {template!r}
MAX_PROMPT_TOKENS = {limit}  # prada eval keeps a question's first tokens, as training did


@torch.no_grad()
def generate(question: str) -> str:
    ids = tokenizer(PROMPT.format(question=question.strip()), return_tensors="pt").input_ids[:, :MAX_PROMPT_TOKENS]
    # The trained virtual tokens go in front of the question as input embeddings. Not
    # model.generate(**inputs): with transformers 5.x and peft <= 0.21.2 it re-inserts them at every
    # decoding step (peft looks for the cache under its old name) and the output is garbage.
    virtual = model.get_prompt(batch_size=1)
    embeds = model.get_input_embeddings()(ids)
    embeds = torch.cat([virtual.to(embeds.dtype), embeds], 1)
    mask = torch.ones(embeds.shape[:2], dtype=torch.long)
    out = model.get_base_model().generate(inputs_embeds=embeds, attention_mask=mask)  # new tokens only
    return tokenizer.decode(out[0], skip_special_tokens=True)
"""


def recipe_vllm(template: str, prompt: bool, max_new_tokens: int) -> str:
    if not prompt:
        return f"""from vllm import LLM, SamplingParams

llm = LLM(model="path/to/this/folder")
params = SamplingParams(temperature=0, max_tokens={max_new_tokens})
texts = [o.outputs[0].text for o in llm.generate([{template!r}.format(question=q) for q in questions], params)]
"""
    return f"""import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from vllm import LLM, SamplingParams

folder = "path/to/this/folder"
tokenizer = AutoTokenizer.from_pretrained(folder)
table = AutoModelForCausalLM.from_pretrained(folder).get_input_embeddings().weight.detach()
virtual = load_file(f"{{folder}}/prompt/adapter_model.safetensors")["prompt_embeddings"].to(table.dtype)
llm = LLM(model=folder, enable_prompt_embeds=True)
params = SamplingParams(temperature=0, max_tokens={max_new_tokens})
inputs = [
    {{"prompt_embeds": torch.cat([virtual, table[tokenizer({template!r}.format(question=q))["input_ids"]]])}}
    for q in questions
]
texts = [o.outputs[0].text for o in llm.generate(inputs, params)]
"""


def _teachers(cfg) -> str:
    """The teachers whose rationales the run trained on (read back from its data), or where to look."""
    try:
        from prada.distill.dataset import load_distillation_set

        names = sorted(
            {r.teacher for ex in load_distillation_set(cfg.data, cfg.seed).source_train for r in ex.rationales}
        )
    except (PradaError, OSError):
        names = []
    return ", ".join(f"`{n}`" for n in names) if names else "see the run's data (`config.yaml`, `data`)"


def _eval_table(run_dir: Path) -> str:
    path = run_dir / EVAL
    if not path.exists():
        return f"Not evaluated yet (`prada eval --run {run_dir}` writes eval.json; export again after it)."
    result = json.loads(path.read_text(encoding="utf-8"))
    lines = ["| dataset | domain | n | accuracy % | 95% CI |", "|---|---|---:|---:|---|"]
    for key, d in result.get("datasets", {}).items():
        ci = d.get("ci")
        interval = f"[{ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""
        lines.append(f"| {key} | {d['domain']} | {d['n']} | {d['accuracy']:.1f} | {interval} |")
    for name in ("source_accuracy", "target_accuracy", "mean_accuracy"):
        if result.get(name) is not None:
            lines.append(f"| **{name.replace('_', ' ')}** | | | {result[name]:.1f} | |")
    return "\n".join(lines)


def model_card(run_dir: Path, cfg, template: str, num_virtual_tokens: int, dtype: str, budget: int, limit: int) -> str:
    from prada.train.backbones import describe_model

    prompt = num_virtual_tokens > 0
    data = cfg.data
    where = f"`{data.data_dir}`" if data.benchmark == "none" else f"`{data.benchmark}`"
    datasets = ", ".join(data.datasets) or f"every dataset of {where}"
    sources = ", ".join(data.source_domains) or "every non-target domain"
    targets = ", ".join(data.target_domains) or "none (in-domain)"
    extra = ", ".join(data.train_files + data.test_files)
    steps = f"{cfg.train.max_steps} steps" if cfg.train.max_steps else f"{cfg.train.epochs:g} epochs"
    files = "`config.json`, `model.safetensors` (" + dtype + "), `generation_config.json`, tokenizer files"
    if prompt:
        files += f", `prompt/` (peft P-tuning adapter: {num_virtual_tokens} virtual tokens; base `..`, this folder)"
    load = (
        f"### transformers + peft\n\n```python\n{recipe_peft(template, limit)}```\n\n"
        '`PeftModel.from_pretrained(model, f"{folder}/prompt")` is the dependable form: the adapter\'s '
        "`base_model_name_or_path` is `..` (this folder, seen from `prompt/`), and `AutoPeftModelForCausalLM` "
        "resolves it against the working directory, not against the adapter."
        if prompt
        else f"### transformers\n\n```python\n{recipe_transformers(template, limit)}```"
    )
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [prada, chain-of-thought, distillation]
---

# {cfg.method} student exported by prada {__version__}

- **Method**: `{cfg.method}` ({cfg.backbone} backbone{", continuous prompt" if prompt else ""}); PRADA: arXiv 2501.09804.
- **Student**: {describe_model(cfg.student.model)}.
- **Teacher rationales**: {_teachers(cfg)}.
- **Data**: benchmark `{data.benchmark}`, datasets {datasets}{f", files {extra}" if extra else ""}; source domains {sources}; target (unseen in training) domains {targets}.
- **Training**: seed {cfg.seed}, {steps}, batch {cfg.train.batch_size} per process, lr {cfg.train.lr}.

## Evaluation (`prada eval`, greedy, {budget} new tokens)

{_eval_table(run_dir)}

## Prompt and answer format

The student was trained on exactly this input: `{template.replace(chr(10), chr(92) + "n")}` (the question, stripped),
and writes ` {{rationale}} {ANSWER_SEPARATOR} {{answer}}` then EOS. The answer is the text after `{ANSWER_SEPARATOR}`
(prada takes the first number / choice letter / yes-no there). The chat template renders the last user
message in this format and adds nothing else; no chat markup was ever seen in training.
`generation_config.json` is greedy with the evaluation's budget, so these recipes print `prada eval`'s text.

## Load it

{load}

### vLLM (not run by prada's tests)

```python
{recipe_vllm(template, prompt, budget)}```

## Files

{files}, `prada.json` (format and settings, machine-readable).
"""
