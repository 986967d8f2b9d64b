#!/usr/bin/env bash
# The README's main job: set up from a clean clone, then compare the full KV cache, WindowKV and the
# baselines that are registered (snapkv, streaming_llm, ...) on needles hidden in real prose (State of the
# Union addresses, with numbers of their own; the question inside the compressed prompt, no answer prefix)
# with the embedded SmolLM2-135M-Instruct model; print the table and write the plots into runs/demo/.
#
#   scripts/demo.sh                       # ~4-6 minutes on 2 CPU cores after the set-up
#   DEMO_LENGTHS=1024,2048,4096 DEMO_BUDGETS="0.12 0.25" scripts/demo.sh
#   DEMO_POLICIES="full windowkv snapkv pyramidkv h2o" scripts/demo.sh      # registered presets only
#   DEMO_PROCS=1 DEMO_THREADS=2 scripts/demo.sh        # one process, two torch threads
#   DEMO_MODEL=HuggingFaceTB/SmolLM2-360M-Instruct scripts/demo.sh        # any HF id or local path
#   DEMO_TASK=needle scripts/demo.sh       # the easy control: generated haystack without digits, answer prefix
#   WINDOWKV_SKIP_BOOTSTRAP=1 WINDOWKV_VENV=/path/to/venv scripts/demo.sh   # use an existing environment
#
# Rerunning resumes: finished rows in runs/demo/results.jsonl are kept, only missing ones are computed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${WINDOWKV_VENV:-.venv}
TASK=${DEMO_TASK:-needle_prose}
LENGTHS=${DEMO_LENGTHS:-1024,2048}
DEPTHS=${DEMO_DEPTHS:-0.1,0.5,0.9}
BUDGETS=${DEMO_BUDGETS:-0.12 0.25}
OUT=${DEMO_OUT:-runs/demo}
# two processes of one torch thread each (torchrun, examples sharded): on 2 cores this beats one
# process of 2 threads, which spin-wait and run ~5x slower when anything else shares the cores
PROCS=${DEMO_PROCS:-2}
THREADS=${DEMO_THREADS:-1}
WANTED=${DEMO_POLICIES:-full windowkv windowkv_no_sharing snapkv streaming_llm}

if [ "${WINDOWKV_SKIP_BOOTSTRAP:-0}" != "1" ]; then
  scripts/bootstrap.sh
fi
PY="$VENV/bin/python"

# the policies among $WANTED that some installed plugin registers (full and windowkv always are)
read -r -a POLICIES <<< "$("$PY" - "$WANTED" <<'PYEOF'
import sys, warnings
warnings.simplefilter("ignore")
from windowkv.plugins import default_registries
registered = default_registries()["policy"]
print(" ".join(name for name in sys.argv[1].split() if name in registered))
PYEOF
)"
ARGS=()
for p in "${POLICIES[@]}"; do ARGS+=(--policy "$p"); done
for b in $BUDGETS; do ARGS+=(--budget "$b"); done
if [ -n "${DEMO_MODEL:-}" ]; then ARGS+=(--model "$DEMO_MODEL"); fi  # default: the embedded SmolLM2

echo "==> comparing ${POLICIES[*]} at budgets $BUDGETS on $TASK (lengths $LENGTHS, depths $DEPTHS) -> $OUT"
if [ "$PROCS" -gt 1 ]; then
  LAUNCH=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$PROCS" -m windowkv)
else
  LAUNCH=("$PY" -m windowkv)
fi
OMP_NUM_THREADS=$THREADS "${LAUNCH[@]}" compare "$TASK" "${ARGS[@]}" --lengths "$LENGTHS" --depths "$DEPTHS" \
  --out "$OUT" --threads "$THREADS"
echo "==> done: table above; rows, summary and plots in $OUT/"
