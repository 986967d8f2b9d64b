"""A prefill shared by every policy gives each policy exactly the generation and cache it gets on its own."""

from __future__ import annotations

import pytest

from tests.eval.tiny_model import save_tiny_model
from windowkv.eval.needle_prose import needle_prose_examples
from windowkv.eval.results import RESULTS, read_rows
from windowkv.eval.runner import evaluate, make_variants
from windowkv.models import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TEXT = "The treaty of April 4, 1908, cost $53,000,000 in 17 ports. It was signed at noon.\n\n" * 40
PRESETS = ["full", "windowkv", "windowkv_deep_leader", "windowkv_no_sharing", "snapkv", "pyramidkv", "chunkkv",
           "adakv", "h2o", "tova", "streaming_llm", "knorm", "random", "windowkv_int4"]


def test_replayed_prefill_equals_each_policys_own_generation(tmp_path):
    model, tok = load_model(save_tiny_model(tmp_path / "model", layers=4))
    source = tmp_path / "prose.txt"
    source.write_text(TEXT, encoding="utf-8")
    examples = needle_prose_examples(tok, [300], [0.2, 0.8], source=str(source), max_new_tokens=6)
    examples += needle_prose_examples(tok, [300], [0.5], source=str(source), max_new_tokens=6, question="after")
    variants = make_variants(PRESETS, ["0.12", "0.3"])
    own = evaluate(model, tok, examples, variants, tmp_path / "own", model_name="tiny", progress=False)
    shared = evaluate(model, tok, examples, variants, tmp_path / "shared", model_name="tiny", progress=False,
                      shared_prefill=True)
    assert own.computed == shared.computed == len(examples) * len(variants)
    a = {r.key: r for r in read_rows(tmp_path / "own" / RESULTS)}
    b = {r.key: r for r in read_rows(tmp_path / "shared" / RESULTS)}
    assert a.keys() == b.keys()
    for k in a:
        assert (b[k].prediction, b[k].kept_per_layer, b[k].new_tokens) == \
            (a[k].prediction, a[k].kept_per_layer, a[k].new_tokens), k
        # bytes are measured from the replayed cache's tensors too (4-bit slots cost less than dense ones)
        assert (b[k].kv_bytes_kept, b[k].kv_bytes_measured) == (a[k].kv_bytes_kept, a[k].kv_bytes_measured), k
        # the question asked after compression cannot share a prefill: it runs the ordinary path
        assert bool(b[k].shared_prefill) == (not k[0].endswith("qafter"))
