"""Random scorer: seeded uniform scores, the floor any policy should beat.

kvpress's ``RandomPress`` draws ``torch.rand(batch, kv_heads, L)`` from a generator seeded with
``seed`` at every layer. This scorer draws the same numbers for a prompt alone on the CPU (kvpress's
random-seeded baseline keeps the same positions) and keeps them padding-independent in a batch.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from windowkv.run import LayerInputs
from windowkv.scorers.base import Scorer


class RandomScorer(Scorer):
    """Uniform ``[0, 1)`` scores from a generator seeded with ``seed`` (the same at every layer).

    Shapes: ``key_valid`` ``[B, L]`` -> scores ``[B, H_kv, L - s]`` float32. One stream of
    ``H_kv * L`` numbers is drawn per call; a row of ``n`` real tokens reads head ``h``, position ``j``
    (counted from its first real token) at index ``h * n + j``: exactly ``torch.rand(1, H_kv, n)`` of
    that row alone (the CPU generator fills sequentially), whatever the padding or the batch.
    """

    name: ClassVar[str] = "random"

    seed: int = Field(0, ge=0, description="Seed of the generator; the same seed keeps the same positions.")

    def score(self, inputs: LayerInputs) -> Tensor:
        b, h, length, _ = inputs.keys.shape
        device = inputs.keys.device
        generator = torch.Generator(device=device).manual_seed(self.seed)
        stream = torch.rand(h * length, generator=generator, device=device, dtype=torch.float32)
        n = inputs.key_valid.sum(-1)  # [B] real tokens per row
        j = torch.arange(inputs.review_length, device=device)[None, :] - (length - n)[:, None]  # [B, R]
        index = torch.arange(h, device=device)[None, :, None] * n[:, None, None] + j[:, None, :]  # [B, H, R]
        return stream[index.clamp(min=0, max=max(h * length - 1, 0))]
