"""windowkv's baselines keep the positions kvpress's presses keep, on a tiny random Llama.

Runs only where kvpress is importable (``scripts/parity_env.sh`` builds ``.venv-parity``)::

    .venv-parity/bin/python -m pytest -m parity tests/parity -rA

Each case prints its measured overlap (``-s`` or ``-rA`` shows it).
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("one_torch_thread")]
kvpress = pytest.importorskip(
    "kvpress", reason="kvpress is not installed (it pins transformers < 5.3): build .venv-parity with "
    "scripts/parity_env.sh and run the suite there"
)

from tests.hf.conftest import prompt, tiny_model  # noqa: E402
from tests.parity.cases import CASES  # noqa: E402
from tests.parity.checks import check  # noqa: E402
from tests.parity.harness import kvpress_kept, prefill_keys, windowkv_kept  # noqa: E402

LENGTH = 256
CHUNK_LENGTH = 240  # ChunkKV: a multiple of the chunk length (20)


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.8])
@pytest.mark.parametrize("name", sorted(CASES))
def test_kept_positions_match_kvpress(name, ratio, record_property):
    length = CHUNK_LENGTH if name == "chunkkv" else LENGTH
    try:
        case = CASES[name](length, ratio)
    except ValueError as exc:
        pytest.skip(f"{name} at compression ratio {ratio}: {exc}")
    model = tiny_model("llama", "eager" if case.eager else "sdpa", layers=4)
    ids = prompt(length, seed=11)
    full = prefill_keys(model, ids)
    theirs = kvpress_kept(model, case.press, ids, full)
    ours = windowkv_kept(model, case.policy, ids)
    ties = {i: case.tie_scores(k) for i, k in enumerate(full)} if case.tie_scores else None
    overlap = check(case.expectation, ours, theirs, ties)
    record_property("overlap", str(overlap))
    print(f"\n{name} ratio={ratio} L={length} [{case.expectation}]: {overlap}")


def test_windowkv_full_budget_keeps_what_an_uncompressed_press_keeps():
    """Ratio 0 in kvpress and a budget covering the prompt in windowkv: nothing is evicted on either side."""
    from kvpress import SnapKVPress

    from windowkv import Policy

    model = tiny_model("llama", layers=2)
    ids = prompt(64, seed=12)
    theirs = kvpress_kept(model, SnapKVPress(compression_ratio=0.0, window_size=8), ids, prefill_keys(model, ids))
    ours = windowkv_kept(model, Policy.from_preset("snapkv", budget=1.0), ids)
    assert all(m.all() for m in theirs.values()) and all(m.all() for m in ours.values())
