#!/usr/bin/env bash
# Study 2, step 0: the learning control (docs/results.md, "Study 2"), resumable. Trains (or resumes) ft-cot
# seed 0 on the synthetic sources (configs/study2-learning.yaml) in the background and, as each snapshot
# appears, evaluates it on the synthetic dev items; every evaluated snapshot's small outputs are committed
# under results/study2/learning/step-N/ (never weights). Rerun after an interruption.
#   bash scripts/study2_learning.sh     (PRADA_BIN: where prada lives, default .venv/bin)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PRADA_BIN:-.venv/bin}
config=${STUDY2_LEARNING_CONFIG:-configs/study2-learning.yaml}
run=${STUDY2_RUN:-runs/study2/learning}
dest=${STUDY2_DEST:-results/study2/learning}
dev=${STUDY2_DEV:-data/study2/dev-synthetic.jsonl}
eval_steps=${STUDY2_EVAL_STEPS:-}  # space-separated steps to evaluate (default: every snapshot and the final run)
[ -f "$dev" ] || "$bin/python" scripts/study2_data.py --out data/study2
mkdir -p "$dest" "$(dirname "$run")"

trainer=
if [ ! -f "$run/train_done.json" ]; then
  if [ -d "$run/checkpoint" ]; then
    "$bin/prada" train --resume "$run" --quiet >>"$run.log" 2>&1 &
  else
    "$bin/prada" train --config "$config" --out "$run" --quiet >>"$run.log" 2>&1 &
  fi
  trainer=$!
fi

evaluate_ready() {
  local snap step out
  for snap in "$run"/snapshots/step-* "$run"; do
    [ -f "$snap/train_done.json" ] || continue
    step=$("$bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"])' "$snap/train_done.json")
    out="$dest/step-$step"
    [ -f "$out/dev.json" ] && continue
    [ -z "$eval_steps" ] || [[ " $eval_steps " == *" $step "* ]] || continue
    "$bin/prada" eval --run "$snap" --data "$dev" --out "$snap/dev.json" --quiet >>"$run.log" 2>&1
    mkdir -p "$out"
    cp "$snap/dev.json" "$snap/dev.predictions.jsonl" "$snap/train_done.json" "$snap/config.yaml" "$out/"
    [ -f "$run/train_log.jsonl" ] && cp "$run/train_log.jsonl" "$dest/train_log.jsonl"
    bash scripts/commit_results.sh "$dest" "Study 2 learning control: ft-cot seed 0 at step $step evaluated on the synthetic dev items"
  done
}

# however this script ends (a signal, or a failed evaluation under set -e), the trainer checkpoints and stops with it
stop_trainer() {
  if [ -n "$trainer" ] && kill -0 "$trainer" 2>/dev/null; then kill -TERM "$trainer"; wait "$trainer" || true; fi
}
trap 'stop_trainer; exit 143' TERM INT HUP
trap stop_trainer EXIT
while [ -n "$trainer" ] && kill -0 "$trainer" 2>/dev/null; do
  evaluate_ready
  sleep "${STUDY_POLL_SECONDS:-60}" & wait $! || true
done
rc=0; [ -n "$trainer" ] && { wait "$trainer" || rc=$?; }
evaluate_ready
exit "$rc"
