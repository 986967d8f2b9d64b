"""windowkv's ``think`` channel pruner keeps the key channels kvpress's ``ThinKPress`` keeps.

``ThinKPress`` zeroes the pruned channels of the keys (no memory saved); windowkv stores only the kept ones
(``CompressedLayer.key_channels``). Composed with SnapKV, both score the channels on the keys SnapKV keeps
(kvpress: ``ComposedPress([SnapKVPress, ThinKPress])``), with the queries of the same window.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("one_torch_thread")]
kvpress = pytest.importorskip("kvpress", reason="kvpress is not installed: run the suite in .venv-parity")

from tests.hf.conftest import prompt, tiny_model  # noqa: E402
from tests.parity.harness import n_kept  # noqa: E402
from windowkv import Policy  # noqa: E402
from windowkv.cache import CompressedLayer  # noqa: E402

LENGTH, WINDOW = 256, 16


def _kvpress_channels(model, press, ids) -> dict[int, torch.Tensor]:
    with torch.no_grad(), press(model):
        cache = model(ids, use_cache=True).past_key_values
    return {i: (layer.keys[0] != 0).any(dim=1) for i, layer in enumerate(cache.layers)}  # [H_kv, D]


def _windowkv_channels(model, policy, ids) -> dict[int, torch.Tensor]:
    with torch.no_grad(), policy.apply(model):
        cache = model(ids, use_cache=True).past_key_values
    out = {}
    for i, layer in enumerate(cache.layers):
        assert isinstance(layer, CompressedLayer)
        mask = torch.zeros(layer.key_channels.shape[1], layer.head_dim, dtype=torch.bool)
        out[i] = mask.scatter(1, layer.key_channels[0], True)
    return out


@pytest.mark.parametrize("prune", [0.25, 0.5])
@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.8])
def test_think_keeps_the_channels_thinkpress_keeps(ratio, prune, record_property):
    from kvpress import ComposedPress, SnapKVPress, ThinKPress

    model = tiny_model("llama", layers=4)
    ids = prompt(LENGTH, seed=11)
    think = ThinKPress(key_channel_compression_ratio=prune, window_size=WINDOW)
    press = think if ratio == 0.0 else ComposedPress(
        [SnapKVPress(compression_ratio=ratio, window_size=WINDOW, kernel_size=5), think])
    budget = 1.0 if ratio == 0.0 else n_kept(LENGTH, ratio) - WINDOW
    policy = Policy.from_preset("snapkv", budget=budget, profiles={"all": {"suffix_size": WINDOW}},
                                channel_pruner={"type": "think", "keep_ratio": 1 - prune})
    theirs = _kvpress_channels(model, press, ids)
    ours = _windowkv_channels(model, policy, ids)
    for layer in theirs:
        assert torch.equal(ours[layer], theirs[layer]), f"layer {layer}: kept channels differ from ThinKPress"
    kept = int(next(iter(ours.values()))[0].sum())
    record_property("kept_channels", kept)
    print(f"\nthink prune={prune} snapkv ratio={ratio}: identical kept channels ({kept} of 16 per KV head)")
