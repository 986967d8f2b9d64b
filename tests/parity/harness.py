"""Kept positions of kvpress presses and of windowkv policies on the same model and prompt.

Both sides are read as ``{layer: [H_kv, L] bool}`` masks of kept prompt positions:

- kvpress, black-box: the press runs through its own hooks (``with press(model): model(ids, cache)``);
  the positions it kept are recovered by matching each compressed key row with the uncompressed
  prefill's keys (a prefill's keys do not depend on the compression of earlier layers: every layer
  attends over the full prompt). ``AdaKVPress`` evicts nothing and masks instead: its pruned
  ``(batch, head, position)`` triples are read from ``module.masked_key_indices``.
- windowkv: ``policy.apply(model)`` and ``handle.last_run.selections[layer]``; a layer without a
  selection kept everything.

Budgets: kvpress's ``compression_ratio`` counts the whole prompt (``n_kept = int(L (1 - ratio))``,
observation window included); windowkv's budget counts review tokens, the suffix kept on top, so a
press keeping ``n_kept`` tokens with a window of ``s`` maps to ``budget = n_kept - s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


from windowkv import Policy


def n_kept(length: int, compression_ratio: float) -> int:
    """kvpress's ``compute_n_kept``: tokens a ``ScorerPress`` keeps of a prompt of ``length``."""
    return max(1, int(length * (1 - compression_ratio)))


def prefill_keys(model, ids: torch.Tensor) -> list[torch.Tensor]:
    """``[H_kv, L, D]`` cached keys of every layer after an uncompressed prefill of one prompt."""
    with torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values
    return [layer.keys[0].clone() for layer in cache.layers]


def match_rows(full: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """``[H, L]`` bool: which rows of ``full`` ``[H, L, D]`` appear (bit-identical) in ``kept`` ``[H, K, D]``."""
    h, length, _ = full.shape
    mask = torch.zeros(h, length, dtype=torch.bool)
    for head in range(h):
        index = {row.numpy().tobytes(): pos for pos, row in enumerate(full[head])}
        if len(index) != length:
            raise AssertionError("two prompt positions have identical keys: positions cannot be matched")
        for row in kept[head]:
            pos = index.get(row.numpy().tobytes())
            if pos is None:
                raise AssertionError("a compressed key matches no prompt position (keys were modified)")
            mask[head, pos] = True
    return mask


def kvpress_kept(model, press, ids: torch.Tensor, full_keys: list[torch.Tensor]) -> dict[int, torch.Tensor]:
    """Kept-position masks ``{layer: [H_kv, L]}`` of ``press`` on the prompt ``ids`` ``[1, L]``."""
    from kvpress import AdaKVPress

    layers = model.model.layers
    with torch.no_grad(), press(model):
        cache = model(ids, use_cache=True).past_key_values
    out = {}
    for idx, full in enumerate(full_keys):
        if isinstance(press, AdaKVPress):
            attn = layers[idx].self_attn
            mask = torch.ones(full.shape[:2], dtype=torch.bool)
            pruned = getattr(attn, "masked_key_indices", None)
            if pruned is not None:
                _, heads, positions = pruned
                mask[heads.cpu(), positions.cpu()] = False
            attn.masked_key_indices = None  # kvpress's attention patch would mask the next decode
            out[idx] = mask
        else:
            out[idx] = match_rows(full, cache.layers[idx].keys[0])
    return out


def windowkv_kept(model, policy: Policy, ids: torch.Tensor, task: str | None = None) -> dict[int, torch.Tensor]:
    """Kept-position masks ``{layer: [H_kv, L]}`` of ``policy`` on the prompt ``ids`` ``[1, L]``."""
    with torch.no_grad(), policy.apply(model, task=task) as handle:
        model(ids, use_cache=True)
    run = handle.last_run
    h_kv = model.config.num_key_value_heads
    out = {}
    for idx in range(run.num_layers):
        sel = run.selections.get(idx)
        mask = torch.ones(h_kv, ids.shape[1], dtype=torch.bool)
        if sel is not None:
            mask = torch.zeros_like(mask)
            positions, valid = sel.positions[0].expand(h_kv, -1), sel.valid[0].expand(h_kv, -1)
            for head in range(h_kv):
                mask[head, positions[head][valid[head]]] = True
        out[idx] = mask
    return out


@dataclass
class Overlap:
    """Agreement of two kept-position masks over every layer and KV head.

    Attributes:
        identical: every layer and head keeps exactly the same positions.
        min_overlap: the smallest ``|ours & theirs| / |theirs|`` over layers and heads.
        mean_overlap: its mean.
        max_count_diff: the largest ``| |ours| - |theirs| |`` over layers and heads.
    """

    identical: bool
    min_overlap: float
    mean_overlap: float
    max_count_diff: int
    layers: int
    heads: int

    def __str__(self) -> str:
        return (f"identical={self.identical} overlap min={self.min_overlap:.4f} mean={self.mean_overlap:.4f} "
                f"max count diff={self.max_count_diff} ({self.layers} layers x {self.heads} heads)")


def compare(ours: dict[int, torch.Tensor], theirs: dict[int, torch.Tensor]) -> Overlap:
    """Per layer and head, the share of kvpress's kept positions windowkv keeps as well."""
    assert sorted(ours) == sorted(theirs), (sorted(ours), sorted(theirs))
    overlaps, diffs, identical = [], [], True
    for layer in theirs:
        a, b = ours[layer], theirs[layer]
        assert a.shape == b.shape, (layer, a.shape, b.shape)
        identical &= bool(torch.equal(a, b))
        both = (a & b).sum(-1).float()
        overlaps += (both / b.sum(-1).clamp(min=1)).tolist()
        diffs += (a.sum(-1) - b.sum(-1)).abs().tolist()
    heads = next(iter(theirs.values())).shape[0]
    return Overlap(identical, min(overlaps), sum(overlaps) / len(overlaps), int(max(diffs)), len(theirs), heads)
