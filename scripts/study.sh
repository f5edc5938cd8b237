#!/usr/bin/env bash
# The pre-registered study (docs/results.md), run resumably: `prada run` on the study config in the
# background, and every minute each run that finished (eval and explain written) has its small outputs
# copied to results/study/<run>/ and committed on their own (weights never leave runs/).
# Rerun it after an interruption: finished runs are skipped, an unfinished one resumes from its checkpoint.
#   bash scripts/study.sh [CONFIG [RESULTS_DIR]]   (defaults: configs/study-other.yaml, results/study)
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/study-other.yaml}
prada=${PRADA:-.venv/bin/prada}
name=$(.venv/bin/python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' "$config")
root=runs/$name
dest=${2:-results/study}
mkdir -p "$dest" "$root"

collect() {
  local changed=0
  for run in "$root"/runs/*/; do
    [ -f "$run/eval.json" ] || continue
    [ -f "$run/explain/explain.json" ] || [ "${run#*prior__}" != "$run" ] || [ "${run#*zero-shot__}" != "$run" ] || continue
    local out="$dest/$(basename "$run")"
    mkdir -p "$out"
    for f in config.yaml train_log.jsonl train_done.json eval.json predictions.jsonl explain/explain.json; do
      [ -f "$run/$f" ] || continue
      if ! cmp -s "$run/$f" "$out/$(basename "$f")"; then cp "$run/$f" "$out/$(basename "$f")"; changed=1; fi
    done
  done
  for f in results.json report.md; do
    if [ -f "$root/$f" ] && ! cmp -s "$root/$f" "$dest/$f"; then cp "$root/$f" "$dest/$f"; changed=1; fi
  done
  if [ "$changed" = 1 ]; then
    local n; n=$(find "$dest" -name eval.json | wc -l)
    git add "$dest"
    git commit -q -m "Study ($name): $n runs finished, small outputs under $dest" -- "$dest" || true
  fi
}

"$prada" run --config "$config" >>"$root/study.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; collect; exit 143' TERM INT HUP
while kill -0 "$pid" 2>/dev/null; do collect; sleep 60; done
wait "$pid"; rc=$?
collect
exit "$rc"
