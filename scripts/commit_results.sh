#!/usr/bin/env bash
# Stage DEST and commit it with MESSAGE, refusing (exit 3, nothing committed) when git would ignore any
# file under DEST: an ignore rule once swallowed 19 of 20 study runs' predictions.
#   bash scripts/commit_results.sh DEST MESSAGE
set -euo pipefail
dest=$1 message=$2
# one committer at a time: several drivers (and a person) may commit results to one checkout
exec 9>"$(git rev-parse --git-dir)/prada-results.lock"
flock 9
git add "$dest"
missing=$(git status --porcelain --ignored -- "$dest" | sed -n 's/^!! //p')
if [ -n "$missing" ]; then
  echo "commit_results.sh: error: these results are ignored by git and would not be committed: $missing" >&2
  echo "commit_results.sh: fix the ignore rule (git check-ignore -v FILE names it), then rerun" >&2
  exit 3
fi
git commit -q -m "$message" -- "$dest" || true
