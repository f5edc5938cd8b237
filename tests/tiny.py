"""Shared builders for tests: a tiny synthetic data folder and tiny run configs (no downloads)."""

from __future__ import annotations

import signal
from pathlib import Path

from prada.config import RunConfig, load_config

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = REPO / "configs" / "tiny.yaml"


def tiny_config(data_dir: Path, *overrides: str) -> RunConfig:
    """configs/tiny.yaml pointed at a prepared data folder, plus key=value overrides."""
    return load_config(TINY_YAML, [f"data.data_dir={data_dir}", *overrides])


def make_synth(folder: Path, seed: int = 0) -> Path:
    from prada.data.synth import build_synth

    build_synth(folder, seed=seed, n_train=40, n_test=10)
    return folder


# --- a tiny student that has learnt something: greedy outputs that differ per prompt and are long -------

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def counting_example(question: str) -> tuple[str, str]:
    """The counting task in the student format: question `kq` -> rationale `r s t ... z`, answer `k`."""
    return " ".join(LETTERS[LETTERS.index(question[-1]) + 1 :]), question[0]


def counting_questions(n: int, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    return ["".join(rng.choice(LETTERS[:20]) for _ in range(rng.randint(1, 3))) for _ in range(n)]


def train_counting_model(out: Path, steps: int = 300, seed: int = 0) -> Path:
    """A 2-layer Llama (byte tokenizer) trained on the counting task in prada's format `{q} ###` ->
    ` {letters after q's last, to z} --> {q's first}` + EOS, behind random virtual prompts of 0-6 tokens.

    Its greedy outputs are long (up to ~55 tokens), differ per prompt, end with EOS at different
    steps and still make sense behind any continuous prompt, so tests that compare generated text
    (batched vs alone, peft vs prada, export vs eval) can fail. About 10 s on 2 CPU cores.
    """
    import random

    import torch
    from transformers import LlamaForCausalLM

    from prada.distill.collate import TrainItem, collate
    from prada.distill.format import format_prompt, format_target
    from prada.methods.prompt import FrozenPrompt
    from prada.model_aliases import build_byte_tokenizer, build_tiny_random
    from prada.train.student import Student

    tok = build_byte_tokenizer()
    lm = LlamaForCausalLM.from_pretrained(build_tiny_random(out, seed=seed))  # tiny-random's architecture
    optimizer = torch.optim.AdamW(lm.parameters(), lr=3e-3)
    rng = random.Random(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 64-wide matrices: more threads only contend for the shared cores

    def item(question: str) -> TrainItem:
        rationale, answer = counting_example(question)
        target = tok(format_target(rationale, answer), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        return TrainItem(tok(format_prompt(question))["input_ids"], target, 0)

    for step in range(steps):
        batch = collate([item(q) for q in counting_questions(32, rng.random())], tok.pad_token_id)
        V = rng.randint(0, 6)  # any prompt in front: prada's and peft's virtual tokens both sit there
        embeds, mask = Student(lm, FrozenPrompt(torch.randn(V, 64)) if V else None).embed(
            batch.input_ids, batch.attention_mask
        )
        logits = lm(inputs_embeds=embeds, attention_mask=mask).logits[:, V:-1]
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch.labels[:, 1:].flatten())
        for group in optimizer.param_groups:  # hold, then decay linearly over the last 30%
            group["lr"] = 3e-3 * min(1.0, (steps - step) / (0.3 * steps))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    lm.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return out


def make_counting_data(folder: Path, n_train: int = 48, n_test: int = 12) -> Path:
    """The counting task as a prada data folder (`data.benchmark=none data.data_dir=...`): the same task
    filed as two datasets in two domains, `counting` (symbolic) and `counting_other` (other)."""
    from prada.data.schema import Example, Rationale, write_examples

    def examples(dataset: str, domain: str, split: str, n: int, seed: int) -> list:
        out = []
        for i, q in enumerate(counting_questions(n, seed)):
            rationale, answer = counting_example(q)
            rationales = (
                [Rationale(text=rationale, answer=answer, correct=True, teacher="rule")] if split == "train" else []
            )
            out.append(
                Example(
                    question=q,
                    answer=answer,
                    answer_type="text",
                    domain=domain,
                    dataset=dataset,
                    id=f"{split}-{i}",
                    rationales=rationales,
                )
            )
        return out

    for k, (dataset, domain) in enumerate([("counting", "symbolic"), ("counting_other", "other")]):
        write_examples(folder / dataset / "train.jsonl", examples(dataset, domain, "train", n_train, 10 * k + 1))
        write_examples(folder / dataset / "test.jsonl", examples(dataset, domain, "test", n_test, 10 * k + 2))
    return folder


# --- data-parallel runs on the CPU ---------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:  # several test sessions may share this machine: no fixed 29500
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_process_command(*prada_args: str) -> list[str]:
    """`accelerate launch` of `python -m prada ARGS` as two gloo processes on the CPU (env: `two_process_env`)."""
    import sys

    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launch += ["--num_cpu_threads_per_process", "1", "--main_process_port", str(free_port())]
    return [*launch, "-m", "prada", *prada_args]


def two_process_env(env: dict, tmp: Path) -> dict:
    """ACCELERATE_USE_CPU makes each rank join a gloo group; HF_HOME points at an empty folder so no
    ~/.cache/huggingface/accelerate/default_config.yaml can change the launch."""
    return {**env, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp)}


def stop_signals_at_default() -> None:
    """A child's preexec_fn: SIGINT/SIGHUP at their defaults, whatever the test process inherited (under `nohup`
    or as a script's background job they start ignored, and prada keeps an inherited ignore)."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
