"""Log-likelihoods of continuations scored against a **compressed** context cache.

lm-evaluation-harness scores ``(context, continuation)`` pairs with one forward pass over
``context + continuation``; a prefill-compression policy never gets to act there, so the scores of every
policy equal the uncompressed model's. :func:`score_continuations` instead runs the model the way
generation does:

1. prefill the (left-padded) contexts with the policy applied: each layer's KV cache is compressed;
   the logits of the last context token give the first continuation token's log-probability (as the
   first generated token comes from the prefill);
2. append the continuation (all but its last token, right-padded) to the compressed cache in one
   forward pass: every later continuation token is predicted by attention over the kept KV only.

So the score of a continuation is the log-probability that generating under the policy assigns to it,
and ``is_greedy`` says whether greedy generation under the policy would produce it. A budget at least the
prompt length keeps everything and gives the uncompressed scores (up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ContinuationScore:
    """The score of one continuation.

    Attributes:
        logprob: sum of the continuation tokens' log-probabilities (natural log).
        is_greedy: every continuation token is the argmax of its prediction.
    """

    logprob: float
    is_greedy: bool


def _pad(rows: Sequence[Sequence[int]], pad: int, device: Any, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, L]`` ids and mask, rows padded with ``pad`` on the left (``left``) or on the right."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        if row:
            span = slice(width - len(row), width) if left else slice(0, len(row))
            ids[i, span] = torch.tensor(list(row), dtype=torch.long, device=device)
            mask[i, span] = 1
    return ids, mask


@torch.no_grad()
def score_continuations(model: Any, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], *,
                        policy: Any = None, tokenizer: Any = None, task: str | None = None,
                        pad_token_id: int = 0) -> list[ContinuationScore]:
    """Score each continuation after its context, the context's KV cache compressed by ``policy``.

    Args:
        model: a transformers causal LM.
        contexts: token ids of each context (at least one token each).
        continuations: token ids of each continuation (at least one token each), same length as ``contexts``.
        policy: a :class:`windowkv.Policy` (``None``: no compression, the plain model).
        tokenizer: lets the policy's classifier read the context text.
        task: force the policy's task profile instead of the classifier.
        pad_token_id: the id used for padding (never attended to).

    Returns:
        One :class:`ContinuationScore` per pair, in order. Rows of a batch get the scores they would get
        alone (left-padded contexts, padded coordinates for the cache; positions counted from each row's
        first real token).
    """
    if len(contexts) != len(continuations):
        raise ValueError(f"{len(contexts)} contexts but {len(continuations)} continuations")
    if not contexts:
        return []
    for i, (ctx, cont) in enumerate(zip(contexts, continuations, strict=True)):
        if not ctx or not cont:
            raise ValueError(f"pair {i}: context and continuation need at least one token each "
                             f"(got {len(ctx)} and {len(cont)})")
    device = model.device
    ctx_ids, ctx_mask = _pad(contexts, pad_token_id, device, left=True)
    ctx_pos = (ctx_mask.cumsum(-1) - 1).clamp(min=0)
    handle = policy.apply(model, tokenizer, task=task) if policy is not None else None
    try:
        out = model(input_ids=ctx_ids, attention_mask=ctx_mask, position_ids=ctx_pos, use_cache=True)
        logits = [out.logits[:, -1:].float()]  # predicts each continuation's first token
        cache = out.past_key_values
        tails = [list(c)[:-1] for c in continuations]
        if any(tails):
            tail_ids, _ = _pad([t or [pad_token_id] for t in tails], pad_token_id, device, left=False)
            start = ctx_mask.sum(-1, keepdim=True)  # each row's next position
            tail_pos = start + torch.arange(tail_ids.shape[1], device=device)
            mask = torch.cat([ctx_mask, torch.ones_like(tail_ids)], dim=-1)  # right padding: causal, never read
            out = model(input_ids=tail_ids, attention_mask=mask, position_ids=tail_pos, past_key_values=cache,
                        use_cache=True)
            logits.append(out.logits.float())
        if handle is not None:
            handle.end_request(cache)
    finally:
        if handle is not None:
            handle.remove()
    logprobs = F.log_softmax(torch.cat(logits, dim=1), dim=-1)  # [B, max_cont, vocab]
    cont_ids, cont_mask = _pad(continuations, pad_token_id, device, left=False)
    picked = logprobs.gather(-1, cont_ids.unsqueeze(-1)).squeeze(-1) * cont_mask
    greedy = (logprobs.argmax(-1) == cont_ids) | (cont_mask == 0)
    totals, alls = picked.sum(-1).tolist(), greedy.all(-1).tolist()
    return [ContinuationScore(float(t), bool(g)) for t, g in zip(totals, alls, strict=True)]
