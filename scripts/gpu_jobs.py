"""Study 2's remaining protocol as a queue of independent jobs over parallel workers (scripts/gpu_session.sh).

Run from the folder that holds `data/study2/` and `runs/` (the repository root, or WORK in gpu_session.sh):

    python scripts/gpu_jobs.py plan                       # the job list, as JSON
    python scripts/gpu_jobs.py probe --procs 4 --out hostbound.json   # host-bound? 1 vs P training processes
    python scripts/gpu_jobs.py run --workers N --deadline EPOCH --out OUT --stage STAGE

The job list is derived, not written out by hand: the tuning fold's settings are `scripts/positive_control.py`'s
(`--study 2`: BASE_STUDY2 and SETTINGS_STUDY2, train only, as that script does), the reported fold's runs and the
oracle's are `prada run`'s plan of `configs/study2-synth2real.yaml` and `configs/study2-oracle.yaml`
(`prada.experiment.plan_runs`: same run folders and configs, so `scripts/study.sh` later reuses what finished).
Each worker is one process that takes the next unclaimed job and brings it to "finished" with prada's own
functions (`train` for the tuning fold; `execute_run` = train, eval and explain, for the others): a finished job
is skipped and an interrupted one resumes from its checkpoint, as with `prada train --resume` / `prada run`.
Before the deadline every worker gets SIGTERM (a trainer finishes its step and writes a checkpoint); every
finished job's small outputs (never weights) are copied to STAGE/results/... in the layout of scripts/study.sh
and positive_control.py as they finish, and OUT/results.tgz and OUT/jobs.json are rewritten each time, so
whatever finished comes back even if the session is cut short.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"

# part -> (experiment config, results folder); the tuning fold's results go where positive_control.py puts them
EXPERIMENTS = {
    "synth2real": ("configs/study2-synth2real.yaml", "results/study2/synth2real"),
    "oracle": ("configs/study2-oracle.yaml", "results/study2/oracle"),
}
CONTROL_RUNS, CONTROL_DEST = "runs/study2/control", "results/study2/control"
PARTS = ("control", "synth2real", "oracle")
RUN_FILES = (
    "config.yaml",
    "train_log.jsonl",
    "train_done.json",
    "eval.json",
    "predictions.jsonl",
    "generation.json",
    "explain/explain.json",
    "explain/explain.md",
)  # scripts/study.sh's list: the small outputs, never weights
PROBE_CONFIG = "configs/study2-learning.yaml"  # ft-cot on the reported fold's synthetic sources
PART_BYTES = 15 * 2**20  # the device returns files up to 16 MiB each: a larger results.tgz is split


def _env_overrides(name: str) -> list[str]:
    return shlex.split(os.environ.get(name, ""))


# --- the job list ---------------------------------------------------------------------------------------------


def plan_jobs(
    parts: list[str], overrides: list[str], exp_overrides: list[str], control_overrides: list[str] | None = None
) -> list[dict]:
    """Every job of the chosen parts, part by part in the order given (default: the protocol's, the tuning fold
    first), each part's jobs in the order its own script runs them.

    `overrides` (RunConfig keys) apply to every job, `control_overrides` to the tuning fold's only, `exp_overrides`
    (experiment keys: seeds, methods, ...) to the two experiments. Anything that changes a run's config makes its
    folder another config's: scripts/study.sh reuses it only if the experiment config is changed the same way.
    """
    from prada.experiment import load_experiment, plan_runs

    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    jobs = []
    for part in parts:
        if part == "control":
            sys.path.insert(0, str(SCRIPTS))
            import positive_control as pc

            # BASE_STUDY2 names the data by the repository's absolute path; the data is under the working folder
            data_dir = f"data.data_dir={Path.cwd() / 'data' / 'study2' / 'difficulty'}"
            base = [data_dir if o.startswith("data.data_dir=") else o for o in pc.BASE_STUDY2]
            for name, (method, over) in pc.SETTINGS_STUDY2.items():
                jobs.append(
                    {
                        "name": f"control/{name}",
                        "part": "control",
                        "dir": f"{CONTROL_RUNS}/{name}",
                        "dest": f"{CONTROL_DEST}/{name}",
                        "overrides": [*base, f"method={method}", *over, *overrides, *(control_overrides or [])],
                        "setting": {"method": method, "overrides": over, "base": base},
                    }
                )
            continue
        config, dest = EXPERIMENTS[part]
        exp = load_experiment(REPO / config, [*overrides, *exp_overrides])
        for run in plan_runs(exp, Path(exp.out_dir) / exp.name):
            jobs.append(
                {
                    "name": f"{part}/{run.name}",
                    "part": part,
                    "dir": str(run.dir),
                    "dest": f"{dest}/runs/{run.name}",
                    "config": str(REPO / config),
                    "exp_overrides": [*overrides, *exp_overrides],
                    "explain": exp.explain and run.trains,
                }
            )
    return jobs


def finished(job: dict) -> bool:
    """The job's done-marker: train_done.json for a tuning-fold run (positive_control trains only); eval.json, and
    explain.json where the experiment explains, for a reported-fold run (what scripts/study.sh collects)."""
    d = Path(job["dir"])
    if job["part"] == "control":
        return (d / "train_done.json").exists()
    return (d / "eval.json").exists() and (not job.get("explain") or (d / "explain" / "explain.json").exists())


def progress_of(job: dict) -> dict:
    """How far an unfinished job got: its checkpoint's step and the last logged step."""
    d = Path(job["dir"])
    out: dict = {"trained": (d / "train_done.json").exists(), "evaluated": (d / "eval.json").exists()}
    for name in ("checkpoint", ".checkpoint.old"):
        try:
            out["checkpoint_step"] = json.loads((d / name / "step.json").read_text())["step"]
            break
        except (OSError, ValueError, KeyError):
            continue
    try:
        lines = (d / "train_log.jsonl").read_text().splitlines()
        out["logged_step"] = json.loads(lines[-1])["step"] if lines else None
    except (OSError, ValueError, KeyError, IndexError):
        pass
    return out


def write_experiment_yaml(part: str, exp_overrides: list[str]) -> None:
    """RUNS/<name>/experiment.yaml as `prada run` writes it (the report and scripts/study.sh read it)."""
    import yaml

    from prada.experiment import load_experiment
    from prada.io import atomic_write_text

    exp = load_experiment(REPO / EXPERIMENTS[part][0], exp_overrides)
    root = Path(exp.out_dir) / exp.name
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / "experiment.yaml", yaml.safe_dump(dataclasses.asdict(exp), sort_keys=False))


def collect(job: dict, stage: Path) -> list[str]:
    """Copy a finished job's small outputs to STAGE/<dest> (the results layout); returns the files copied."""
    src, dest = Path(job["dir"]), stage / job["dest"]
    copied = []
    names = ("config.yaml", "train_log.jsonl", "train_done.json") if job["part"] == "control" else RUN_FILES
    for name in names:
        if (src / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dest / name)
            copied.append(name)
    if job["part"] == "control":  # what positive_control.py writes beside each setting's log
        (dest / "setting.json").write_text(json.dumps(job["setting"], indent=2))
    else:
        exp_yaml = src.parent.parent / "experiment.yaml"
        if exp_yaml.is_file():
            shutil.copy2(exp_yaml, stage / Path(job["dest"]).parent.parent / "experiment.yaml")
    return copied


def pack(stage: Path, out: Path) -> None:
    """OUT/results.tgz of STAGE/results and STAGE/logs, written atomically; split in 15 MiB parts when larger."""
    tmp = out / ".results.tgz.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for sub in ("results", "logs"):
            if (stage / sub).exists():
                tar.add(stage / sub, arcname=sub, filter=lambda t: None if t.name.endswith(".safetensors") else t)
    for old in out.glob("results.tgz.part*"):
        old.unlink()
    if tmp.stat().st_size <= PART_BYTES:
        os.replace(tmp, out / "results.tgz")
        return
    (out / "results.tgz").unlink(missing_ok=True)
    with open(tmp, "rb") as f:  # reassemble with: cat results.tgz.part* > results.tgz
        i = 0
        while chunk := f.read(PART_BYTES):
            (out / f"results.tgz.part{i}").write_bytes(chunk)
            i += 1
    tmp.unlink()


# --- the workers ----------------------------------------------------------------------------------------------


class Stop(BaseException):
    """SIGTERM outside a training loop (evaluating, explaining, loading): stop this job, take no other."""


def _status_path(claims: Path, job: dict) -> Path:
    return claims / (job["name"].replace("/", "__") + ".json")


def _write_status(path: Path, status: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, path)


def run_job(job: dict) -> str:
    """Bring one job to finished with prada's own functions; resumes from a checkpoint, skips what is done."""
    from prada.train.checkpoint import find_checkpoint
    from prada.train.loop import train

    run_dir = Path(job["dir"])
    if job["part"] == "control":  # as positive_control.run_setting: train only, resume when a checkpoint is there
        from prada.config import load_config

        if find_checkpoint(run_dir) is not None and not (run_dir / "train_done.json").exists():
            train(resume=run_dir, progress=False)
            return "resumed"
        train(load_config(None, job["overrides"]), run_dir, progress=False)
        return "trained"
    from prada.experiment import execute_run, load_experiment, plan_runs

    exp = load_experiment(job["config"], job["exp_overrides"])
    run = next(r for r in plan_runs(exp, Path(exp.out_dir) / exp.name) if str(r.dir) == job["dir"])
    return execute_run(run, exp.explain_per_dataset if exp.explain else None, False, lambda s: print(s, flush=True))


def worker(plan: Path, claims: Path, stop_at: float, min_job_s: float, index: int) -> int:
    """Take unclaimed jobs in order until none is left, SIGTERM arrives, or too little time remains to start one."""
    from prada.train.host_memory import configure_host_memory
    from prada.train.loop import TrainingInterrupted

    configure_host_memory()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

    def stop(signum, frame):
        raise Stop(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    jobs = json.loads(plan.read_text())
    for job in jobs:
        if time.time() > stop_at - min_job_s:
            print(f"[worker {index}] {stop_at - time.time():.0f}s left before the stop: no new job", flush=True)
            break
        path = _status_path(claims, job)
        try:
            os.close(os.open(path.with_suffix(".claim"), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            continue
        status = {"status": "running", "worker": index, "start": time.time()}
        _write_status(path, status)
        print(f"[worker {index}] {job['name']}: start", flush=True)
        try:
            status["result"] = run_job(job)
            status["status"] = "finished"
        except (TrainingInterrupted, Stop) as e:
            status.update(status="interrupted", error=str(e) or type(e).__name__)
        except Exception as e:  # one failed job does not stop the queue
            status.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-3000:])
        status["end"] = time.time()
        _write_status(path, status)
        print(f"[worker {index}] {job['name']}: {status['status']} {status.get('error', '')}", flush=True)
        if status["status"] == "interrupted":
            return 143
    return 0


# --- the coordinator ------------------------------------------------------------------------------------------


def run(a: argparse.Namespace) -> int:
    overrides, exp_overrides = _env_overrides("JOB_OVERRIDES"), _env_overrides("EXP_OVERRIDES")
    control_overrides = _env_overrides("CONTROL_OVERRIDES")
    parts = [p for p in a.parts.split(",") if p]
    out, stage = Path(a.out), Path(a.stage)
    work = Path("runs") / "gpu-session"
    claims = work / "claims"
    shutil.rmtree(claims, ignore_errors=True)  # claims of an earlier call on this machine: its jobs resume
    claims.mkdir(parents=True)
    (stage / "logs").mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    for part in parts:
        if part in EXPERIMENTS:
            write_experiment_yaml(part, [*overrides, *exp_overrides])
    jobs = plan_jobs(parts, overrides, exp_overrides, control_overrides)
    summary = {
        "workers": a.workers,
        "parts": parts,
        "job_overrides": overrides,
        "exp_overrides": exp_overrides,
        "control_overrides": control_overrides,
        "deadline": a.deadline,
        "stop_at": a.deadline - a.grace,
        "started": time.time(),
        "jobs": {j["name"]: {"part": j["part"], "dir": j["dir"], "dest": j["dest"]} for j in jobs},
    }
    for job in jobs:  # finished in an earlier call on this machine: collected, not queued
        if finished(job):
            summary["jobs"][job["name"]].update(status="finished-earlier", copied=collect(job, stage))
    queue = [j for j in jobs if not finished(j)]
    (work / "plan.json").write_text(json.dumps(queue, indent=1))

    def report(final: bool = False) -> None:
        from prada.io import atomic_write_json

        for job in jobs:
            entry = summary["jobs"][job["name"]]
            path = _status_path(claims, job)
            if entry.get("status") == "finished-earlier":
                continue
            try:
                status = json.loads(path.read_text())
            except (OSError, ValueError):
                status = {"status": "not-started"}
            entry.update({k: v for k, v in status.items() if k != "traceback"})
            if status.get("traceback"):
                entry["traceback_tail"] = status["traceback"][-800:]
            if "start" in status:
                entry["seconds"] = round(status.get("end", time.time()) - status["start"], 1)
            if finished(job):
                entry["status"] = "finished" if entry["status"] in ("finished", "running") else entry["status"]
                for key in ("trained", "evaluated", "checkpoint_step", "logged_step"):  # progress_of's, now stale
                    entry.pop(key, None)
                if "copied" not in entry:
                    entry["copied"] = collect(job, stage)
            else:
                entry.update(progress_of(job))
                if final and entry["status"] == "running":  # its worker was killed at the deadline
                    entry["status"] = "killed"
        summary["finished"] = [n for n, e in summary["jobs"].items() if e.get("status", "").startswith("finished")]
        summary["left"] = [n for n in summary["jobs"] if n not in summary["finished"]]
        summary["updated"] = time.time()
        pack(stage, out)
        atomic_write_json(out / "jobs.json", summary)

    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // max(1, a.workers)))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    procs = []
    if queue:
        for i in range(min(a.workers, len(queue))):
            cmd = [sys.executable, str(Path(__file__).resolve()), "worker", "--plan", str(work / "plan.json")]
            cmd += ["--claims", str(claims), "--stop-at", str(a.deadline - a.grace), "--min-job-s", str(a.min_job_s)]
            with open(stage / "logs" / f"worker-{i}.log", "ab") as log:  # the child keeps its own handle
                procs.append(subprocess.Popen([*cmd, "--index", str(i)], env=env, stdout=log, stderr=subprocess.STDOUT))

    def stop_early(signum, frame):  # this script stopped from outside: the workers stop (and checkpoint) now
        a.deadline = min(a.deadline, time.time() + a.grace)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop_early)
    print(f"[jobs] {len(jobs)} jobs, {len(jobs) - len(queue)} finished earlier, {len(procs)} workers", flush=True)
    report()
    termed = killed = False
    done_before: set[str] = set()
    while any(p.poll() is None for p in procs):
        time.sleep(a.poll)
        now = time.time()
        if not termed and now >= a.deadline - a.grace:
            print(f"[jobs] stop time: SIGTERM to {sum(p.poll() is None for p in procs)} workers", flush=True)
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            termed = True
        if not killed and now >= a.deadline:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            killed = True
        done_now = {j["name"] for j in queue if finished(j)}
        if done_now - done_before:
            print(f"[jobs] finished: {', '.join(sorted(done_now - done_before))}", flush=True)
            done_before = done_now
            report()
    summary["worker_exit_codes"] = [p.returncode for p in procs]
    summary["ended"] = time.time()
    report(final=True)
    print(f"[jobs] finished {len(summary['finished'])}, left {len(summary['left'])} -> {out / 'jobs.json'}", flush=True)
    return 0


# --- host-boundness: the same short training as 1 process and as P processes on the one device ---------------------


class GpuSampler:
    """nvidia-smi's utilisation and memory every 200 ms, stamped on arrival (None where there is no nvidia-smi)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float]] = []
        self.proc = None
        if shutil.which("nvidia-smi") is None:
            return
        query = ["--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-lms", "200"]
        self.proc = subprocess.Popen(
            ["nvidia-smi", *query], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                util, mem = (float(x) for x in line.split(",")[:2])
            except ValueError:
                continue
            self.samples.append((time.time(), util, mem))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()

    def between(self, t0: float, t1: float) -> dict:
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if not inside:
            return {"gpu_util_mean": None, "gpu_mem_used_mib_max": None, "gpu_samples": 0}
        return {
            "gpu_util_mean": round(statistics.fmean(s[1] for s in inside), 1),
            "gpu_mem_used_mib_max": max(s[2] for s in inside),
            "gpu_samples": len(inside),
        }


PROBE_SETTINGS = [  # the probe's steps are all logged, and nothing else is written while it runs
    "train.log_every=1",
    "train.save_every=0",
    "train.save_every_minutes=0",
    "train.snapshot_steps=[]",
]
PROBE_ROOT = Path("runs") / "gpu-probe"


def _wait_for(path: Path, give_up: float) -> bool:
    while not path.exists():
        if time.time() > give_up:
            return False
        time.sleep(0.01)
    return True


def probe_worker(a: argparse.Namespace) -> int:
    """One of the P probe processes: imports, config and the device ready before the start line; process 0 first
    trains alone on every CPU thread (`one`), then all P train together on CPUs / P threads each (`many`)."""
    import torch

    from prada.config import load_config
    from prada.train.host_memory import configure_host_memory
    from prada.train.loop import train

    configure_host_memory()
    overrides = [*_env_overrides("JOB_OVERRIDES"), f"train.max_steps={a.steps}", *PROBE_SETTINGS]
    cfg = load_config(REPO / PROBE_CONFIG, overrides)
    if torch.cuda.is_available():
        torch.zeros(1, device="cuda")  # the CUDA context, before the start line
    (PROBE_ROOT / f"ready-{a.index}").touch()
    give_up = time.time() + a.timeout
    cpus = os.cpu_count() or 1
    if a.index == 0 and _wait_for(PROBE_ROOT / "go-one", give_up):
        torch.set_num_threads(cpus)
        train(cfg, PROBE_ROOT / "one-0", progress=False)
    if _wait_for(PROBE_ROOT / "go-many", give_up):
        torch.set_num_threads(max(1, cpus // a.procs))
        train(cfg, PROBE_ROOT / f"many-{a.index}", progress=False)
    return 0


def _watch(dirs: list[Path], procs: list, give_up: float) -> list[list[tuple[float, dict]]]:
    """Every train_log.jsonl line of `dirs`, stamped when it appeared, until each run is done (or the time is up)."""
    rows: list[list[tuple[float, dict]]] = [[] for _ in dirs]
    while time.time() < give_up and any(p.poll() is None for p in procs):
        time.sleep(0.05)
        now = time.time()
        for i, d in enumerate(dirs):
            try:
                lines = (d / "train_log.jsonl").read_text().splitlines()
            except OSError:
                continue
            for line in lines[len(rows[i]) :]:
                try:
                    rows[i].append((now, json.loads(line)))
                except ValueError:
                    break  # a line being written: read it next time
        if all((d / "train_done.json").exists() for d in dirs):
            break
    return rows


def _rates(rows: list[list[tuple[float, dict]]], warmup: int, sampler: "GpuSampler") -> dict:
    """Tokens/s and steps/s over the window in which every process was past its warm-up and none had finished."""
    out: dict = {"rows": [len(r) for r in rows]}
    measured = [r[warmup:] for r in rows]
    if any(len(m) < 2 for m in measured):
        return {**out, "error": "too few logged steps after the warm-up (see runs/gpu-probe/probe-*.log)"}
    t0 = max(m[0][0] for m in measured)  # every process is past its warm-up
    t1 = min(m[-1][0] for m in measured)  # and none has finished yet
    inside = [[row for t, row in m if t0 < t <= t1] for m in measured]
    if t1 <= t0 or any(len(x) < 2 for x in inside):
        return {**out, "error": "the processes' measured steps did not overlap in time (raise --steps)"}
    per_proc = [statistics.median(row["tokens_per_s"] for row in x) for x in inside]
    return {
        **out,
        "window_s": round(t1 - t0, 2),
        "steps_in_window": [len(x) for x in inside],
        "steps_per_s": round(sum(len(x) for x in inside) / (t1 - t0), 3),
        "tokens_per_s_per_proc": [round(v, 1) for v in per_proc],
        "tokens_per_s": round(sum(per_proc), 1),
        **sampler.between(t0, t1),
    }


def probe(a: argparse.Namespace) -> int:
    """P processes start once; process 0 trains alone (`one`), then all P together (`many`)."""
    overrides = _env_overrides("JOB_OVERRIDES")
    cpus = os.cpu_count() or 1
    out: dict = {
        "what": f"the same ft-cot training ({PROBE_CONFIG}, {a.steps} steps, the first {a.warmup} not counted) "
        f"as 1 process on {cpus} CPU threads and as {a.procs} concurrent processes on {max(1, cpus // a.procs)} "
        "each; tokens/s summed over processes (each its median over the steps logged while all ran); "
        "workers = P if P processes give more than threshold x one",
        "cpu_count": cpus,
        "procs": a.procs,
        "threshold": a.threshold,
        "overrides": overrides,
    }
    shutil.rmtree(PROBE_ROOT, ignore_errors=True)
    PROBE_ROOT.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(cpus), "TQDM_DISABLE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    t_launch = time.time()
    give_up = t_launch + a.timeout
    procs = []
    for i in range(a.procs):
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "probe-worker",
            "--index",
            str(i),
            "--procs",
            str(a.procs),
        ]
        with open(PROBE_ROOT / f"probe-{i}.log", "wb") as log:  # the child keeps its own handle
            procs.append(
                subprocess.Popen(
                    [*cmd, "--steps", str(a.steps), "--timeout", str(a.timeout)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    while not all((PROBE_ROOT / f"ready-{i}").exists() for i in range(a.procs)):
        if time.time() > give_up or all(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    out["startup_s"] = round(time.time() - t_launch, 1)
    sampler = GpuSampler()
    try:
        for label, dirs in (
            ("one", [PROBE_ROOT / "one-0"]),
            ("many", [PROBE_ROOT / f"many-{i}" for i in range(a.procs)]),
        ):
            if label == "many" and a.procs == 1:
                break
            t0 = time.time()
            (PROBE_ROOT / f"go-{label}").touch()
            rows = _watch(dirs, procs[: len(dirs)], give_up)  # `one`: process 0 alone trains
            out[label] = {
                "procs": len(dirs),
                "train_wall_s": round(time.time() - t0, 1),
                **_rates(rows, a.warmup, sampler),
            }
    finally:
        (PROBE_ROOT / "go-many").touch()  # a process still waiting goes on, or ends at its timeout
        for p in procs:
            try:
                p.wait(timeout=max(1.0, give_up - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        sampler.stop()
    out["exit_codes"] = [p.returncode for p in procs]
    for d in PROBE_ROOT.glob("*-[0-9]*"):  # the probe's run folders: their weights are not wanted
        if d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
    one, many = out.get("one", {}).get("tokens_per_s"), out.get("many", {}).get("tokens_per_s")
    out["ratio"] = round(many / one, 3) if one and many else None
    if out["ratio"] is None:
        out["workers"], out["reason"] = 1, "no comparison (a measurement failed, or P = 1): one worker"
    elif out["ratio"] > a.threshold:
        out["workers"], out["reason"] = a.procs, f"{a.procs} processes gave {out['ratio']}x one > {a.threshold}"
    else:
        out["workers"], out["reason"] = 1, f"{a.procs} processes gave {out['ratio']}x one <= {a.threshold}"
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(json.dumps({k: out[k] for k in ("ratio", "workers", "reason")}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("plan", help="print the job list")
    p.add_argument("--parts", default=",".join(PARTS))
    p = sub.add_parser("probe", help="host-boundness: 1 vs P training processes on the one device")
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3, help="logged steps of each process not counted")
    p.add_argument("--threshold", type=float, default=1.3)
    p.add_argument("--timeout", type=float, default=240, help="seconds for the whole probe")
    p.add_argument("--out", required=True)
    p = sub.add_parser("run", help="run the job queue until the deadline")
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--deadline", type=float, required=True, help="epoch seconds by which every worker has stopped")
    p.add_argument("--grace", type=float, default=45, help="SIGTERM this many seconds before the deadline")
    p.add_argument("--min-job-s", type=float, default=30, help="no job starts with less than this before SIGTERM")
    p.add_argument("--poll", type=float, default=2)
    p.add_argument("--out", required=True, help="jobs.json and results.tgz go here")
    p.add_argument("--stage", required=True, help="the results layout is built here")
    p = sub.add_parser("probe-worker", help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--procs", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--timeout", type=float, required=True)
    p = sub.add_parser("worker", help=argparse.SUPPRESS)
    p.add_argument("--plan", required=True)
    p.add_argument("--claims", required=True)
    p.add_argument("--stop-at", type=float, required=True)
    p.add_argument("--min-job-s", type=float, default=30)
    p.add_argument("--index", type=int, default=0)
    a = ap.parse_args(argv)
    if a.cmd == "plan":
        env = [_env_overrides(k) for k in ("JOB_OVERRIDES", "EXP_OVERRIDES", "CONTROL_OVERRIDES")]
        jobs = plan_jobs(a.parts.split(","), *env)
        print(json.dumps([{k: j[k] for k in ("name", "dir", "dest")} for j in jobs], indent=1))
        return 0
    if a.cmd == "probe":
        return probe(a)
    if a.cmd == "run":
        return run(a)
    if a.cmd == "probe-worker":
        return probe_worker(a)
    return worker(Path(a.plan), Path(a.claims), a.stop_at, a.min_job_s, a.index)


if __name__ == "__main__":
    sys.exit(main())
