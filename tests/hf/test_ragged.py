"""Ragged head-wise storage: head-wise policies generate what the padded layout generates, with fewer bytes.

Every comparison runs the same policy twice, ``layout="padded"`` (every KV head padded to the fullest,
unused slots masked: the reference) and ``layout="auto"`` (ragged when heads keep different counts).
"""

from __future__ import annotations

import copy

import pytest
import torch

from windowkv import Policy
from windowkv.cache import CompressedLayer
from windowkv.cache.nbytes import cache_nbytes
from windowkv.errors import ConfigError, WindowKVError
from tests.hf.conftest import prompt, tiny_model

#: head-wise policies: their KV heads keep different numbers of slots
HEADWISE = {
    "adakv": {},
    "adakv_keepkv": {"merger": {"type": "keepkv"}},  # merged slots: per-slot weights bias attention
    # re-selects at the end of the prefill and every 3 tokens; heads with fewer valid slots stay ragged
    "adakv_decode": {"decode": {"budget": 45, "interval": 3, "window": 4, "heads": "per_kv_head"}},
}


def _batch():
    """Two rows of different lengths (left padding): 70 and 53 tokens."""
    ids = torch.cat([prompt(70, 1), prompt(70, 2)])
    mask = torch.ones_like(ids)
    mask[1, :17] = 0
    return ids.masked_fill(mask == 0, 0), mask


def _generate(model, policy, ids, mask, layout, new=8, cache=None):
    with policy.apply(model, layout=layout), torch.no_grad():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=new, do_sample=False, pad_token_id=0,
                             eos_token_id=None, return_dict_in_generate=True, output_logits=True,
                             past_key_values=cache)
    return out.sequences, torch.stack(out.logits), out.past_key_values


def _layers(cache):
    return [layer for layer in cache.layers if isinstance(layer, CompressedLayer)]


@pytest.mark.parametrize("name", sorted(HEADWISE))
def test_ragged_generation_equals_padded(family, attn, name, one_torch_thread):
    model = tiny_model(family, attn)
    policy = Policy.from_preset("adakv", budget=8, **HEADWISE[name])
    ids, mask = _batch()
    padded = _generate(model, policy, ids, mask, "padded")
    ragged = _generate(model, policy, ids, mask, "auto")
    assert not any(layer.ragged is not None for layer in _layers(padded[2]))
    assert any(layer.ragged is not None for layer in _layers(ragged[2])), "no layer was stored ragged"
    if "decode" in HEADWISE[name]:  # re-selected while decoding, and packed again
        assert any(layer.ragged is not None and layer.slots_end > 70 for layer in _layers(ragged[2]))
    assert torch.equal(padded[0], ragged[0])
    torch.testing.assert_close(ragged[1], padded[1], rtol=1e-4, atol=1e-4)
    # continuation on the returned caches (several new tokens: the padded view; then decode steps again)
    more = torch.randint(3, 256, (2, 5), generator=torch.Generator().manual_seed(3))
    # the copies are taken before any continuation extends the originals
    copies = [copy.deepcopy(cache) for _, _, cache in (padded, ragged)]
    for kind in ("continue", "deepcopy"):
        runs = []
        for i, (seq, _, cache) in enumerate((padded, ragged)):
            cache = copies[i] if kind == "deepcopy" else cache
            ids2 = torch.cat([seq, more], dim=1)
            runs.append(_generate(model, policy, ids2, torch.cat([mask, torch.ones(2, ids2.shape[1] - 70,
                                                                               dtype=mask.dtype)], 1),
                                  "auto", new=4, cache=cache))
        assert torch.equal(runs[0][0], runs[1][0])
        torch.testing.assert_close(runs[1][1], runs[0][1], rtol=1e-4, atol=1e-4)


def test_ragged_bytes_are_the_kept_slots_and_match_snapkv(one_torch_thread):
    """A 1k-token prompt on a tiny 4-layer GQA Llama at budget 0.25: the bytes measured from the cache's
    tensors are the kept slots times a slot's bytes plus the per-(row, head) lengths, and adakv holds
    about what snapkv holds (padded, adakv held several times more)."""
    model = tiny_model("llama", "sdpa")
    ids = prompt(1024, 5)
    held, caches = {}, {}
    for name, layout in (("adakv", "padded"), ("adakv", "auto"), ("snapkv", "auto")):
        with Policy.from_preset(name, budget=0.25).apply(model, layout=layout) as handle, torch.no_grad():
            caches[name, layout] = model(ids, attention_mask=torch.ones_like(ids)).past_key_values
        held[name, layout] = handle.last_run.kv_nbytes  # what result rows report as kv_bytes_kept
        assert held[name, layout] == cache_nbytes(caches[name, layout])
    layers = _layers(caches["adakv", "auto"])
    assert len(layers) == 4 and any(layer.ragged is not None for layer in layers)
    # a layer stays padded only when its KV heads keep equal counts (then padding holds nothing unused)
    assert all(layer.ragged is not None or bool((layer.head_lengths() == layer.head_lengths()[:, :1]).all())
               for layer in layers)
    kept = sum(int(layer.head_lengths().sum()) for layer in layers)  # valid slots over rows and KV heads
    offsets = sum(layer.ragged.lengths.numel() * layer.ragged.lengths.element_size()
                  for layer in layers if layer.ragged is not None)
    slot_bytes = 2 * 16 * 4  # a key and a value of head dim 16, float32
    assert held["adakv", "auto"] == kept * slot_bytes + offsets
    assert held["adakv", "padded"] > 1.5 * held["snapkv", "auto"]
    assert abs(held["adakv", "auto"] / held["snapkv", "auto"] - 1) < 0.03


def test_layer_ops_keep_the_ragged_slots():
    """Batch selection, beam reordering, crop and re-selection give what the padded layer gives."""
    g = torch.Generator().manual_seed(0)
    b, h, k, d = 2, 3, 6, 4
    keys, values = torch.randn(b, h, k, d, generator=g), torch.randn(b, h, k, d, generator=g)
    positions = torch.arange(k)[None, None].expand(b, h, k).clone()
    valid = torch.rand(b, h, k, generator=g) > 0.4
    valid[0, 0] = True
    valid[1, 2] = False
    valid[1, 2, 3] = True  # a head with a single slot
    layers = {layout: CompressedLayer(keys, values, positions, valid, k, layout=layout)
              for layout in ("padded", "auto")}
    assert layers["padded"].ragged is None and layers["auto"].ragged is not None
    assert layers["auto"].kv_nbytes() == int(valid.sum()) * 2 * d * 4 + b * h * 8
    for layer in layers.values():
        for _ in range(3):
            layer.expect_update = True
            layer.update(torch.ones(b, h, 1, d), torch.ones(b, h, 1, d))
        layer.crop(-1)
        layer.batch_select_indices(torch.tensor([1, 0, 1]))
        layer.retain(torch.tensor([[[0, 3, 5, 6]]]).expand(3, h, 4), torch.ones(3, h, 4, dtype=torch.bool))
    for got, want in zip(layers["auto"].dense(), layers["padded"].dense()):
        assert torch.equal(got * layers["padded"].slot_positions()[1][..., None], want *
                           layers["padded"].slot_positions()[1][..., None])
    assert torch.equal(layers["auto"].valid, layers["padded"].valid)
    twin = copy.deepcopy(layers["auto"])
    assert twin.kv_nbytes() == layers["auto"].kv_nbytes()


def test_the_ragged_layout_refuses_packed_or_pruned_slots():
    model = tiny_model("llama", "sdpa")
    policy = Policy.from_preset("adakv", budget=8, quantizer={"type": "uniform", "bits": 8, "group_size": 16})
    with pytest.raises(ConfigError, match="ragged layout"):
        policy.apply(model, layout="ragged")
    with pytest.raises(ValueError, match="unknown cache layout"):
        policy.apply(model, layout="flat")
    keys = torch.zeros(1, 2, 4, 8)
    with pytest.raises(WindowKVError, match="ragged cache layout"):
        CompressedLayer(keys, keys, torch.zeros(1, 2, 4, dtype=torch.long), torch.ones(1, 2, 4, dtype=torch.bool),
                        4, key_channels=torch.zeros(1, 2, 4, dtype=torch.long), head_dim=8, layout="ragged")


def test_quantized_headwise_slots_stay_padded_and_correct(one_torch_thread):
    """With a quantizer the auto layout keeps the padded storage (documented fallback)."""
    model = tiny_model("llama", "sdpa")
    policy = Policy.from_preset("adakv", budget=8, quantizer={"type": "uniform", "bits": 8, "group_size": 16})
    ids, mask = _batch()
    seq, _, cache = _generate(model, policy, ids, mask, "auto")
    assert all(layer.ragged is None for layer in _layers(cache))
    assert torch.equal(seq, _generate(model, policy, ids, mask, "padded")[0])
