"""Vectorised tensor helpers shared by the pipeline and the components.

Shapes use ``B`` (batch), ``H`` (heads: KV heads, or 1 for head-shared selection), ``R`` (review
positions), ``L`` (prompt positions), ``K`` (kept positions). No function here loops over windows,
heads or rows in Python, and none synchronises with the device.
"""

from __future__ import annotations

import torch
from torch import Tensor


def ranks(scores: Tensor) -> Tensor:
    """Rank of each element along the last axis (0 = best; ties to the earlier index), long."""
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    positions = torch.arange(scores.shape[-1], device=scores.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


def keep_best(keep: Tensor, scores: Tensor, cap: Tensor) -> Tensor:
    """``keep`` ``[B, ..., N]`` bool reduced to its ``cap[b]`` best-scoring elements per row of the last axis.

    Elements already within the cap stay; no device sync (the cap is applied as a tensor comparison).
    """
    big = torch.finfo(torch.float32).max
    key = torch.where(keep, scores.float().nan_to_num(nan=-big, posinf=big, neginf=-big), float("-inf"))
    return keep & (ranks(key) < cap.view(-1, *[1] * (keep.dim() - 1)))


def valid_prefix(lengths: Tensor, size: int) -> Tensor:
    """``[B, size]`` bool: position ``j`` of row ``b`` is valid iff ``j < lengths[b]``."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def align_left(x: Tensor, offsets: Tensor) -> Tensor:
    """Shift each row left by its offset: ``out[b, ..., j] = x[b, ..., offsets[b] + j]``.

    Args:
        x: ``[B, H, R]``.
        offsets: ``[B]`` long, the number of leading padding positions of each row.

    Returns:
        ``[B, H, R]``; positions past the row's end repeat the last element (callers mask them).
    """
    size = x.shape[-1]
    idx = (torch.arange(size, device=x.device)[None, :] + offsets[:, None]).clamp(max=max(size - 1, 0))
    return x.gather(-1, idx[:, None, :].expand(x.shape[0], x.shape[1], size))


def unalign_left(keep: Tensor, offsets: Tensor) -> Tensor:
    """Inverse of :func:`align_left` for masks: ``out[b, h, p] = keep[b, h, p - offsets[b]]`` (False before).

    Args:
        keep: ``[B, H, R]`` bool.
        offsets: ``[B]`` long.
    """
    size = keep.shape[-1]
    pos = torch.arange(size, device=keep.device)[None, :] - offsets[:, None]
    idx = pos.clamp(min=0)[:, None, :].expand(keep.shape[0], keep.shape[1], size)
    return keep.gather(-1, idx) & (pos >= 0)[:, None, :]


def mask_to_positions(keep: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """The first ``size`` kept positions of each row and head, in increasing order.

    Args:
        keep: ``[B, H, L]`` bool.
        size: number of slots ``K`` (an upper bound of the kept count, ``K <= L``).

    Returns:
        ``positions`` ``[B, H, K]`` long (sorted where valid) and ``valid`` ``[B, H, K]`` bool; slots past
        a row's kept count hold unkept positions and ``valid`` False.
    """
    order = torch.sort(keep.to(torch.int8), dim=-1, descending=True, stable=True).indices[..., :size]
    return order, keep.gather(-1, order)


def gather_positions(states: Tensor, positions: Tensor) -> Tensor:
    """Gather ``states`` ``[B, H_kv, L, D]`` at ``positions`` ``[B, H, K]`` (``H`` is 1 or ``H_kv``)."""
    b, h_kv, _, d = states.shape
    idx = positions.expand(b, h_kv, positions.shape[-1])
    return states.gather(2, idx[..., None].expand(b, h_kv, idx.shape[-1], d))


def window_view(scores: Tensor, lengths: Tensor, window_size: int) -> tuple[Tensor, Tensor]:
    """Cut the valid prefix of each row into consecutive windows of ``window_size`` tokens.

    Args:
        scores: ``[B, H, R]`` float.
        lengths: ``[B]`` long, valid review tokens of each row.
        window_size: ``w >= 1``.

    Returns:
        ``windows`` ``[B, H, N, w]`` (invalid tokens set to 0) and ``token_valid`` ``[B, 1, N, w]`` bool,
        with ``N = ceil(R / w)``; a row's last window may be shorter, later windows empty.
    """
    b, h, r = scores.shape
    n = -(-r // window_size)
    pad = n * window_size - r
    valid = valid_prefix(lengths, r)[:, None, :]
    padded = torch.nn.functional.pad(torch.where(valid, scores, 0.0), (0, pad))
    valid = torch.nn.functional.pad(valid, (0, pad))
    return padded.view(b, h, n, window_size), valid.view(b, 1, n, window_size)


def keep_ranked_windows(window_scores: Tensor, window_sizes: Tensor, budgets: Tensor) -> Tensor:
    """Keep the best windows, in score order, while their total size fits the budget.

    The kept set is the longest prefix of the ranking (score descending, ties to the earlier window)
    whose total size is ``<= budget``: never over budget, even when the short last window is ranked
    among the dropped ones. With windows of equal size ``w`` this keeps ``floor(budget / w)`` windows,
    i.e. drops ``ceil((n_tokens - budget) / w)`` as in the paper.

    Args:
        window_scores: ``[B, H, N]`` float; empty windows must score ``-inf``.
        window_sizes: ``[B, 1, N]`` long, tokens per window (0 for empty windows).
        budgets: ``[B]`` long, review tokens allowed per row.

    Returns:
        ``[B, H, N]`` bool, the kept windows.
    """
    order = torch.sort(window_scores, dim=-1, descending=True, stable=True).indices
    sizes = window_sizes.expand_as(window_scores).gather(-1, order)
    fits = (sizes.cumsum(-1) <= budgets[:, None, None]) & (sizes > 0)
    return torch.zeros_like(fits).scatter(-1, order, fits)
