"""`prada export`: a finished run -> a folder a user can ship and load without prada.

The folder holds plain Hugging Face weights (LoRA merged in), a generation config and a tokenizer
that reproduce `prada eval` (greedy, its token budget, its prompt format as the chat template), for
prompt methods a peft P-tuning adapter in `prompt/` whose base is that folder, and a model card
(README.md) with the method, teacher, data, the eval table, the format and tested loading recipes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from prada import __version__
from prada.data.benchmarks import NO_BENCHMARK
from prada.distill.format import ANSWER_SEPARATOR, format_input
from prada.errors import PradaError
from prada.hf_compat import save_config_for_4x, save_tokenizer
from prada.io import atomic_write_json, atomic_write_text, normal_permissions
from prada.methods.registry import method_spec
from prada.run_dir import EVAL, PROMPT, weights_fingerprint

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
PROMPT_ADAPTER = PROMPT  # the exported folder keeps the run folder's name for the prompt adapter
PLAIN = "plain"  # prompt methods: the same model with its virtual prompt as added tokens, no peft needed
VIRTUAL_TOKEN = "<prada_prompt_{}>"
LM_EVAL = "lm_eval"  # lm-eval-harness tasks for this export: its test items, prompt format and budget
LM_EVAL_GROUP = "prada_export"
BASE_OF_ADAPTER = ".."  # prompt/ sits inside the model folder it belongs to
log = logging.getLogger(__name__)


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
    try:  # transformers 4.x (prada's floor) reads rope settings only from the old top-level keys
        save_config_for_4x(tmp)
    except ValueError as e:
        log.warning("export: config.json may load as a different model under transformers 4.x (%s)", e)
    tokenizer.chat_template = chat_template(tokenizer, template)
    save_tokenizer(tokenizer, tmp)
    prefix = ""
    if student.prompt is not None:
        _write_prompt_adapter(run_dir / PROMPT, student.prompt.embeddings, tmp / PROMPT_ADAPTER)
        prefix = write_plain_checkpoint(lm, tokenizer, student.prompt.embeddings, template, tmp / PLAIN)
    tasks = _write_lm_eval_tasks(cfg, tmp / LM_EVAL, prefix, budget)
    atomic_write_json(
        tmp / "prada.json",
        {
            "method": cfg.method,
            "student": cfg.student.model,
            "prompt_format": template,
            "answer_separator": ANSWER_SEPARATOR,
            "num_virtual_tokens": student.num_virtual_tokens,
            "plain_prefix": prefix,
            "max_new_tokens": budget,
            "max_prompt_tokens": limit,
            "dtype": dtype,
            "run_weights": weights_fingerprint(run_dir),  # the run's weights it came from (eval's cache key too)
            "prada_version": __version__,
        },
    )
    atomic_write_text(
        tmp / "README.md",
        model_card(run_dir, cfg, template, student.num_virtual_tokens, dtype, budget, limit, prefix, tasks),
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


def write_plain_checkpoint(lm, tokenizer, embeddings: torch.Tensor, template: str, folder: Path) -> str:
    """`folder`: `lm` with the trained virtual prompt (V, D) as V added tokens; returns their text prefix.

    prada (and peft) put the V prompt vectors in front of the question's token embeddings. Here they
    become rows of the embedding table under added special tokens `<prada_prompt_0>` ...; a prompt
    that starts with those tokens gives the model the same input vectors, so plain `generate`,
    pipelines, lm-eval-harness and vLLM reproduce `prada eval` without peft. The output head gets
    zero rows for them (untied from the input table where it was tied) and `generation_config.json`
    suppresses them, so they are never generated and every real token's logit is unchanged. The chat
    template prepends the prefix; raw text must start with it (`prada.json` `plain_prefix`) and be
    tokenized without the tokenizer's own special tokens, which the prefix already holds.
    """
    import copy

    from torch import nn

    V, D = embeddings.shape
    names = [VIRTUAL_TOKEN.format(i) for i in range(V)]
    tok = copy.deepcopy(tokenizer)
    tok.add_tokens(names, special_tokens=True)
    ids = tok.convert_tokens_to_ids(names)
    bos = tokenizer.bos_token is not None and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    prefix = "".join(names) + (tokenizer.bos_token if bos else "")  # prada: [virtual, BOS, question]

    model = copy.deepcopy(lm)
    table, head = model.get_input_embeddings(), model.get_output_embeddings()
    old = table.weight.detach()
    size = max(old.shape[0], max(ids) + 1)
    scale = getattr(table, "embed_scale", None)  # Gemma-style tables multiply their rows; the prompt is not scaled
    rows = embeddings.detach().to(old.dtype) / (scale.to(old.dtype) if torch.is_tensor(scale) else (scale or 1))
    new_table = torch.cat([old, old.new_zeros(size - old.shape[0], D)])
    new_table[ids] = rows
    old_head = head.weight.detach()
    new_head = torch.cat([old_head, old_head.new_zeros(size - old_head.shape[0], D)]).clone()
    new_head[ids] = 0  # a zero row: logit 0, and suppressed in generation
    table.weight, table.num_embeddings = nn.Parameter(new_table), size
    head.weight, head.out_features = nn.Parameter(new_head), size
    text_config = model.config.get_text_config()
    text_config.vocab_size = size
    text_config.tie_word_embeddings = model.config.tie_word_embeddings = False
    model.generation_config = copy.deepcopy(lm.generation_config)
    model.generation_config.suppress_tokens = list(ids)
    model.save_pretrained(str(folder), safe_serialization=True)
    try:
        save_config_for_4x(folder)
    except ValueError:
        pass  # warned for the main folder already
    tok.chat_template = chat_template(tokenizer, template).replace("{{ bos_token }}", "")
    tok.chat_template = "{{ " + json.dumps(prefix) + " }}" + tok.chat_template
    save_tokenizer(tok, folder)
    return prefix


def _write_lm_eval_tasks(cfg, folder: Path, prefix: str, budget: int) -> list[str]:
    """lm-eval-harness tasks over the run's test items (`lm_eval/data/<key>.jsonl`); their dataset keys.

    Paths are relative to the export folder: lm-eval runs from inside it (see the model card).
    """
    from prada.evaluation.evaluate import load_test_sets
    from prada.io import atomic_write_jsonl
    from prada.lm_eval_tasks import write_tasks

    try:
        tests = load_test_sets(cfg, None, "test")
    except (PradaError, OSError) as e:
        log.warning("export: no lm-eval tasks (the run's test data cannot be read: %s)", e)
        return []
    files = {}
    for key, examples in tests.items():
        rows = [{k: v for k, v in ex.to_dict().items() if k != "rationales"} for ex in examples]
        atomic_write_jsonl(folder / "data" / f"{key}.jsonl", rows)
        files[key] = f"{LM_EVAL}/data/{key}.jsonl"
    write_tasks(folder, LM_EVAL_GROUP, files, prefix, budget)
    return list(files)


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

    path = run_dir / EVAL
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


def recipe_plain(template: str, limit: int, prefix: str) -> str:
    """Python that loads `plain/` (virtual prompt as added tokens) with transformers alone and generates what `prada eval` does."""
    return f"""import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

folder = "path/to/this/folder/plain"
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder).eval()
PREFIX = {prefix!r}  # the trained virtual prompt, as added tokens (the chat template writes it too)
PROMPT = {template!r}
MAX_PROMPT_TOKENS = {limit}  # prada eval keeps a question's first tokens, as training did


@torch.no_grad()
def generate(question: str) -> str:
    prefix = tokenizer(PREFIX, add_special_tokens=False, return_tensors="pt").input_ids
    ids = tokenizer(PROMPT.format(question=question.strip()), add_special_tokens=False, return_tensors="pt").input_ids
    ids = torch.cat([prefix, ids[:, :MAX_PROMPT_TOKENS]], 1)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids))  # greedy, budget, EOS, suppressed prompt tokens
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
"""


def recipe_lm_eval(prompt: bool) -> str:
    model = "plain" if prompt else "."
    return f"""cd path/to/this/folder
lm_eval --model hf --model_args pretrained={model} --include_path {LM_EVAL} --tasks {LM_EVAL_GROUP} --batch_size 1
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


def card_metadata(run_dir: Path, cfg) -> str:
    """The card's YAML front matter, written by huggingface_hub's `ModelCardData` so the Hub reads it:
    library, pipeline, tags, the base model (when the student is a hub id) and eval.json's accuracies
    as model-index results."""
    from huggingface_hub import EvalResult, ModelCardData

    student = cfg.student.model
    hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", student) and not Path(student).expanduser().exists()
    results = []
    path = run_dir / EVAL
    if path.exists():
        for key, d in json.loads(path.read_text(encoding="utf-8")).get("datasets", {}).items():
            results.append(
                EvalResult(
                    task_type="text-generation",
                    dataset_type=key,
                    dataset_name=key,
                    dataset_split="test",
                    metric_type="accuracy",
                    metric_value=round(float(d["accuracy"]), 2),
                )
            )
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["prada", "chain-of-thought", "distillation", cfg.method],
        base_model=student if hub_id else None,
        model_name=f"{cfg.method} student (prada)",
        eval_results=results or None,
    )
    return f"---\n{data.to_yaml()}\n---"


def model_card(
    run_dir: Path,
    cfg,
    template: str,
    num_virtual_tokens: int,
    dtype: str,
    budget: int,
    limit: int,
    prefix: str = "",
    tasks: list[str] = (),
) -> str:
    from prada.model_aliases import describe_model

    prompt = num_virtual_tokens > 0
    data = cfg.data
    where = f"`{data.data_dir}`" if data.benchmark == NO_BENCHMARK else f"`{data.benchmark}`"
    datasets = ", ".join(data.datasets) or f"every dataset of {where}"
    sources = ", ".join(data.source_domains) or "every non-target domain"
    targets = ", ".join(data.target_domains) or "none (in-domain)"
    extra = ", ".join(data.train_files + data.test_files)
    steps = f"{cfg.train.max_steps} steps" if cfg.train.max_steps else f"{cfg.train.epochs:g} epochs"
    files = "`config.json`, `model.safetensors` (" + dtype + "), `generation_config.json`, tokenizer files"
    if prompt:
        files += f", `prompt/` (peft P-tuning adapter: {num_virtual_tokens} virtual tokens; base `..`, this folder)"
        files += f", `{PLAIN}/` (the same model with those tokens added to its vocabulary: no peft needed)"
    if tasks:
        files += f", `{LM_EVAL}/` (lm-eval-harness tasks: {', '.join(tasks)})"
    load = (
        f"### transformers + peft\n\n```python\n{recipe_peft(template, limit)}```\n\n"
        '`PeftModel.from_pretrained(model, f"{folder}/prompt")` is the dependable form: the adapter\'s '
        "`base_model_name_or_path` is `..` (this folder, seen from `prompt/`), and `AutoPeftModelForCausalLM` "
        "resolves it against the working directory, not against the adapter."
        if prompt
        else f"### transformers\n\n```python\n{recipe_transformers(template, limit)}```"
    )
    if prompt:
        load += (
            f"\n\n### transformers alone (`{PLAIN}/`: pipelines, lm-eval-harness, vLLM)\n\n"
            f"`{PLAIN}/` holds the {num_virtual_tokens} trained virtual-prompt vectors as added tokens "
            f"`{prefix}`: a prompt that starts with them gives the model `prada eval`'s input. Its chat "
            "template writes them; raw text must start with them and be tokenized with "
            "`add_special_tokens=False`. They are never generated (zero output rows, `suppress_tokens`). "
            "A `PeftModel` over the main folder with `generate(**inputs)` is not this model under transformers 5 "
            "(peft <= 0.21.2 re-inserts the prompt at every step): use this folder or the recipe above."
            f"\n\n```python\n{recipe_plain(template, limit, prefix)}```"
        )
    if tasks:
        load += (
            "\n\n### lm-eval-harness\n\n"
            f"`{LM_EVAL}/` holds one task per test set of the run (`{LM_EVAL_GROUP}_<dataset>`, the items `prada eval` "
            "scored), prada's prompt format, greedy decoding with its budget and prada's answer rules (the "
            "text after ` --> `; needs `pip install prada` beside lm-eval). Run it from this folder:"
            f"\n\n```bash\n{recipe_lm_eval(prompt)}```"
        )
    return f"""{card_metadata(run_dir, cfg)}

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
