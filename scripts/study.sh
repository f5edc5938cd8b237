#!/usr/bin/env bash
# The pre-registered study (docs/results.md), run resumably: `prada run` on the study config in the
# background, and every minute each run that finished (evaluated, and explained if it trained and the config
# does not say `explain: false`) has its
# small outputs copied to RESULTS_DIR/runs/<run>/ in the run folder's layout, `prada report RESULTS_DIR`
# rebuilds the (partial) report from those copies, and the lot is committed on its own. Weights never
# leave runs/. Rerun it after an interruption: finished runs are skipped, an unfinished one resumes.
# A run that finishes in this session also gets machine.json (CPU model, speed flags, cores, GPU): its
# timings mean little without it. A checkpoint lives only in runs/, so a run unfinished when the machine goes
# (a session's end) restarts from step 0 in a fresh checkout.
#   bash scripts/study.sh [CONFIG [RESULTS_DIR]]   (defaults: configs/study-other.yaml, results/study)
# A result file that git would ignore stops the script (exit 3) before anything is committed.
# STUDY_AFTER_RUN, if set, is a command run (bash -c) after the commit of any run that finished in this
# session, with `prada run` paused meanwhile (SIGSTOP/SIGCONT) so the two do not share the cores; it
# failing is reported, not fatal. Study 2 evaluates each run's snapshots this way:
#   STUDY_AFTER_RUN="python scripts/study2_rules.py over-steps --evaluate >/dev/null" bash scripts/study.sh ...
# To stop early, send SIGTERM to the `prada run` process (not this script): it checkpoints and exits,
# and this script collects what finished, commits, and exits with prada's status.
# The whole script is one block, read before any of it runs: editing this file while a study runs (for hours)
# cannot make the running copy read the edited bytes at its old offset.
{
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/study-other.yaml}
dest=${2:-results/study}
bin=${PRADA_BIN:-.venv/bin}
name=$("$bin/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' "$config")
# `explain: false` (the oracle's config): a trained run is finished once evaluated; otherwise once explained too
explains=$("$bin/python" -c 'import sys, yaml; print(str(yaml.safe_load(open(sys.argv[1])).get("explain", True)).lower())' "$config")
root=runs/$name
mkdir -p "$dest/runs" "$root"

# The machine this session runs on, as JSON: a run's timings (train_log, generation.json) mean little without it.
machine_json() {
  "$bin/python" -c 'import json, os, time, torch
from prada.report.environment import cpu_model, cpu_speed_flags
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
print(json.dumps({"cpu": cpu_model(), "cores": os.cpu_count(), "speed_flags": cpu_speed_flags(), "gpu": gpu,
                  "collected_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))'
}

collect() {
  local changed=0 finished=0 run out f new_run
  for run in "$root"/runs/*/; do
    run=${run%/}
    [ -f "$run/eval.json" ] || continue
    [ "$explains" = false ] || grep -q '^method: \(prior\|zero-shot\)$' "$run/config.yaml" || [ -f "$run/explain/explain.json" ] || continue
    out="$dest/runs/$(basename "$run")"
    new_run=0; [ -f "$out/eval.json" ] || new_run=1  # finished in this session (restored runs already have it)
    for f in config.yaml train_log.jsonl train_done.json eval.json predictions.jsonl generation.json explain/explain.json explain/explain.md; do
      [ -f "$run/$f" ] || continue
      if ! cmp -s "$run/$f" "$out/$f"; then mkdir -p "$(dirname "$out/$f")"; cp "$run/$f" "$out/$f"; changed=1; fi
    done
    if [ "$new_run" = 1 ]; then machine_json >"$out/machine.json"; finished=1; fi
  done
  [ -f "$root/experiment.yaml" ] && ! cmp -s "$root/experiment.yaml" "$dest/experiment.yaml" && cp "$root/experiment.yaml" "$dest/" && changed=1
  if [ "$changed" = 1 ]; then
    if compgen -G "$dest/runs/*/eval.json" >/dev/null; then  # a study's first minute has experiment.yaml, nothing to report
      nice "$bin/prada" report "$dest" >/dev/null 2>>"$root/study.log" || echo "prada report failed (see $root/study.log)"
    fi
    bash scripts/commit_results.sh "$dest" "Study ($name): $(find "$dest/runs" -name eval.json | wc -l) runs finished; small outputs and the partial report under $dest"
  fi
  if [ "$finished" = 1 ] && [ -n "${STUDY_AFTER_RUN:-}" ]; then
    kill -STOP "${pid:-0}" 2>/dev/null || true
    bash -c "$STUDY_AFTER_RUN" || echo "STUDY_AFTER_RUN failed (exit $?): $STUDY_AFTER_RUN" >&2
    kill -CONT "${pid:-0}" 2>/dev/null || true
  fi
}

# A fresh checkout has results/ but not runs/: put the finished runs' small outputs back, so that
# `prada run` reuses them (train_done.json, eval.json and explain.json mark a run finished; weights are not needed).
for saved in "$dest"/runs/*/; do
  saved=${saved%/}
  [ -d "$saved" ] && [ ! -e "$root/runs/$(basename "$saved")" ] || continue
  mkdir -p "$root/runs" && cp -r "$saved" "$root/runs/" && echo "restored $(basename "$saved") from $dest"
done
[ -f "$dest/experiment.yaml" ] && [ ! -f "$root/experiment.yaml" ] && cp "$dest/experiment.yaml" "$root/"

"$bin/prada" run --config "$config" >>"$root/study.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid || true; collect; exit 143' TERM INT HUP
while kill -0 "$pid" 2>/dev/null; do collect; sleep "${STUDY_POLL_SECONDS:-60}" & wait $! || true; done  # a background sleep: a signal is handled at once
rc=0; wait "$pid" || rc=$?
collect
exit "$rc"
}
