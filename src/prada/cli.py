"""`prada` command line: one table of subcommands, each a thin handler over the library."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prada import __version__
from prada.errors import PradaError


def _data_build(a: argparse.Namespace) -> None:
    from prada.config import DataConfig
    from prada.data.benchmarks import benchmark

    cfg = DataConfig(benchmark=a.benchmark, source=a.source or "")
    summary = benchmark(a.benchmark).build(Path(a.out), cfg, cache_dir=a.cache_dir)
    print(f"wrote {len(summary['datasets'])} datasets to {a.out} (summary: {Path(a.out) / 'summary.json'})")


def _data_synth(a: argparse.Namespace) -> None:
    from prada.data.synth import build_synth

    summary = build_synth(Path(a.out), seed=a.seed, n_train=a.n_train, n_test=a.n_test, difficulty=a.difficulty)
    print(f"wrote {len(summary['datasets'])} synthetic datasets to {a.out}")


def _teach(a: argparse.Namespace) -> None:
    from prada.teacher.zeroshot_cot import teach

    skip = set(a.skip_domains or [])
    if a.config and not a.include_targets:
        from prada.experiment import untrained_domains

        skip |= untrained_domains(a.config)
    stats = teach(
        Path(a.data),
        a.teacher,
        samples=a.samples,
        temperature=a.temperature,
        concurrency=a.concurrency,
        max_tries=a.max_tries,
        keep_incorrect=a.keep_incorrect,
        datasets=a.datasets,
        skip_domains=sorted(skip),
    )
    print(f"teacher {a.teacher}: {stats}")


def _train(a: argparse.Namespace) -> None:
    from prada.train.loop import train

    if a.resume:
        if a.overrides or a.config or a.out:  # the run continues exactly as configured: nothing may change it
            given = " ".join(
                [*(["--config", a.config] if a.config else []), *(["--out", a.out] if a.out else []), *a.overrides]
            )
            raise PradaError(
                f"prada train --resume {a.resume}: {given} would be ignored; a resumed run keeps its saved config.yaml. "
                "To train with other settings, start a new run with --config ... --out NEW_DIR"
            )
        run_dir = train(resume=Path(a.resume))
    else:
        if not a.out:
            raise PradaError("prada train: --out RUN_DIR is required (or --resume RUN_DIR)")
        from prada.config import load_config
        from prada.run_dir import is_finished

        already = is_finished(Path(a.out))  # another config's finished run is refused inside train()
        run_dir = train(load_config(a.config, a.overrides), Path(a.out))
        if already:
            print(f"run already finished with this config: {run_dir} (nothing to train)")
            return
    print(f"run saved to {run_dir}")


def _eval(a: argparse.Namespace) -> None:
    from prada.evaluation.evaluate import evaluate_run

    result, path = evaluate_run(Path(a.run), data=a.data, split=a.split, out=a.out)
    print(f"mean accuracy {result['mean_accuracy']:.2f}% -> {path}")


def _explain(a: argparse.Namespace) -> None:
    from prada.report.explain import explain_run

    out = explain_run(Path(a.run), data=a.data)
    print(f"explanation written to {out}")


def _run(a: argparse.Namespace) -> None:
    from prada.experiment import run_experiment

    out = run_experiment(a.config, a.overrides)
    print(f"report: {out / 'report.md'}")


def _report(a: argparse.Namespace) -> None:
    from prada.report import report_finished

    path, done, planned = report_finished(Path(a.dir), Path(a.out) if a.out else None)
    print(f"report of {done}" + (f" of {planned} planned" if planned else "") + f" runs: {path}")


def _add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="experiment folder of `prada run` (runs/<name>), finished or not")
    p.add_argument("--out", default=None, help="write results.json, report.md and plots here (default: DIR)")


def _export(a: argparse.Namespace) -> None:
    from prada.export import export_run

    out = export_run(Path(a.run), Path(a.out), dtype=a.dtype)
    print(f"exported to {out} (model card: {out / 'README.md'})")


def _config_show(a: argparse.Namespace) -> None:
    from prada.config import describe_config
    from prada.methods.registry import method_spec

    spec = method_spec(a.method) if a.method else None
    unused = (
        ()
        if spec is None
        else tuple(p for p, on in (("prompt.", spec.prompt), ("adversary.", spec.adversary)) if not on)
    )
    for key, value, doc in describe_config(a.method):
        shown = "''" if value == "" else ("[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else value)
        note = (
            f"  (method {a.method}: {method_spec(a.method).backbone})" if key == "train.backbone" and a.method else ""
        )
        note += f"  (unused by method {a.method})" if key.startswith(unused) else ""
        print(f"{key} = {shown}{note}")
        for line in doc.splitlines():
            print(f"    {line}")


def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="finished run folder (prada train --out)")
    p.add_argument("--out", required=True, help="new folder to write (must not exist or be empty)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="weight dtype of the export")


def _add_config_show(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default=None, help="show the defaults this method runs with")


def _add_data_build(p: argparse.ArgumentParser) -> None:
    from prada.data.benchmarks import DATA_BUILD

    p.add_argument("--benchmark", default=DATA_BUILD[0], choices=DATA_BUILD, help="which benchmark to build")
    p.add_argument(
        "--source", default=None, help="local folder laid out like ../shared/data, or base URL (default: upstream)"
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="download cache (default $PRADA_CACHE/downloads, else ~/.cache/prada/downloads)",
    )
    p.add_argument("--out", required=True, help="data folder to write (DATA_DIR/<dataset>/{train,test}.jsonl)")


def _add_data_synth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="data folder to write (DATA_DIR/<dataset>/{train,test}.jsonl)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (same seed, same suite)")
    p.add_argument("--n-train", type=int, default=300, help="training questions per dataset")
    p.add_argument("--n-test", type=int, default=100, help="test questions per dataset")
    p.add_argument("--difficulty", type=int, default=1, help="1 = in-distribution; higher = longer, harder variants")


def _temperature(text: str) -> float:
    """argparse type: a finite number >= 0 (float('nan') would otherwise be sent to the teacher)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _add_teach(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="data folder whose training questions get rationales")
    p.add_argument(
        "--teacher",
        required=True,
        help="openai:MODEL (completions endpoint), openai-chat:MODEL or openai:MODEL?chat (chat completions), "
        "or hf:PATH_OR_ID (a local transformers model)",
    )
    p.add_argument("--samples", type=int, default=1, help="rationales per question (diverse reasoning, D)")
    p.add_argument("--temperature", type=_temperature, default=0.0, help="sampling temperature (0: greedy)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    p.add_argument("--max-tries", type=int, default=6, help="attempts per request before it counts as failed")
    p.add_argument("--keep-incorrect", action="store_true", help="also keep rationales whose answer is wrong")
    p.add_argument("--datasets", nargs="*", default=None, help="only these dataset keys (default: all)")
    p.add_argument(
        "--config",
        default=None,
        help="run or experiment YAML you teach for: its target domains that no run trains on are skipped",
    )
    p.add_argument("--include-targets", action="store_true", help="with --config: teach its target domains too")
    p.add_argument("--skip-domains", nargs="*", default=None, help="domains whose questions are not asked")


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=None,
        help="run YAML, or the name of one that ships with prada (tiny, ...; `prada config show` lists every key)",
    )
    p.add_argument("--out", default=None, help="run folder to write")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run from its checkpoint")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. method=prada adversary.lambda_max=0.3")


def _add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="finished run folder")
    p.add_argument("--data", default=None, help="DATA_DIR or FILE.jsonl (default: the run's configured test sets)")
    p.add_argument("--split", default="test", help="split file of a DATA_DIR (<dataset>/<split>.jsonl)")
    p.add_argument("--out", default=None, help="eval JSON to write (default: RUN_DIR/eval.json)")


def _add_explain(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="finished run folder")
    p.add_argument("--data", default=None, help="DATA_DIR to analyse (default: the run's own data)")


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=None,
        help="experiment YAML, or the name of one that ships with prada (ftcot12-lodo-cpu, synth-lodo, ...; "
        "default: the embedded offline default)",
    )
    p.add_argument("overrides", nargs="*", help="key=value overrides of the experiment config")


# name, help, add-arguments, handler
COMMANDS = [
    ("data build", "build the 12-dataset CoT benchmark with real teacher rationales", _add_data_build, _data_build),
    ("data synth", "generate the offline synthetic suite", _add_data_synth, _data_synth),
    ("teach", "add teacher rationales with Zero-shot-CoT", _add_teach, _teach),
    ("train", "train a student", _add_train, _train),
    ("eval", "evaluate a run", _add_eval, _eval),
    ("explain", "domain-alignment analysis and plots", _add_explain, _explain),
    ("run", "the whole experiment: data, methods, eval, explain, report", _add_run, _run),
    (
        "report",
        "rebuild the report from the runs of an experiment folder that have finished so far",
        _add_report,
        _report,
    ),
    ("export", "write a run as a shippable folder: HF weights, peft prompt adapter, model card", _add_export, _export),
    ("config show", "print every config key with its default and docstring", _add_config_show, _config_show),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prada", description="Prompt-assisted domain-adversarial CoT distillation.")
    parser.add_argument("--version", action="version", version=f"prada {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, help_text, add_args, handler in COMMANDS:
        parts = name.split()
        target = sub
        if len(parts) == 2:
            if parts[0] not in groups:
                g = sub.add_parser(parts[0], help=f"{parts[0]} commands")
                groups[parts[0]] = g.add_subparsers(dest="subcommand", required=True)
            target = groups[parts[0]]
        p = target.add_parser(parts[-1], help=help_text, description=help_text)
        add_args(p)
        p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or banner (same as TQDM_DISABLE=1)")
        p.set_defaults(handler=handler)
    return parser


def _quiet_libraries() -> None:
    """Our own progress bars say what is happening; silence the libraries' per-file bars and notices."""
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    import os

    tqdm_disable = os.environ.get("TQDM_DISABLE")
    if args.quiet:  # read by every prada bar (prada.progress) and by tqdm itself; restored below
        os.environ["TQDM_DISABLE"] = "1"
    try:
        if args.command in ("train", "run", "eval"):  # the allocator is the process's, so the command sets it, once
            from prada.train.host_memory import configure_host_memory

            configure_host_memory()
        args.handler(args)
    except PradaError as e:
        print(f"prada: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        import errno

        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        # Every artifact is written atomically: what was finished is intact, the rest is redone on the rerun.
        where = f" writing {e.filename}" if e.filename else ""
        fix = (
            "free some space (or write elsewhere)"
            if e.errno in (errno.ENOSPC, errno.EDQUOT)
            else "make that folder writable (or write elsewhere: eval --out FILE, a copy of a read-only run)"
        )
        print(f"prada: error: {e.strerror}{where}; {fix} and rerun the same command", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:
        done = f" ({e})" if str(e) else ""
        if args.command == "train" and (args.resume or args.out):
            print(
                f"prada: interrupted{done}; continue with `prada train --resume {args.resume or args.out}`",
                file=sys.stderr,
            )
        else:
            print(f"prada: interrupted{done}; rerun the same command to continue", file=sys.stderr)
        sys.exit(128 + getattr(e, "signum", 2))  # 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP
    finally:  # main() called in-process (tests, notebooks) leaves the environment as it found it
        if args.quiet and tqdm_disable is None:
            os.environ.pop("TQDM_DISABLE", None)
        elif args.quiet:
            os.environ["TQDM_DISABLE"] = tqdm_disable
