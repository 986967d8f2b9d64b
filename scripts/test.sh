#!/usr/bin/env bash
# Set up from a clean clone and run every test: the main suite, the real-model checks on the embedded
# SmolLM2 model (marker `slow`), and the transformers 5.2.x + kvpress parity environment.
#
#   scripts/test.sh              # everything (what CI runs)
#   scripts/test.sh --fast       # main suite only
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
PY=${WINDOWKV_VENV:-.venv}/bin/python

echo "==> main suite (transformers $("$PY" -c 'import transformers; print(transformers.__version__)'))"
"$PY" -m pytest -q -m "not slow and not parity"
[ "${1:-}" = "--fast" ] && exit 0

echo "==> real-model checks on the embedded SmolLM2 model"
"$PY" -m pytest -q -m slow

if [ -x scripts/parity_env.sh ]; then
  echo "==> transformers 5.2.x + kvpress environment: integration and parity tests"
  scripts/parity_env.sh
  .venv-parity/bin/python -m pytest -q tests/hf tests/parity -m "not slow or parity"
fi
