"""When each generation step's logits are ready, on the clock of the device that computes them.

A :class:`StepClock` is a transformers logits processor: ``generate`` calls it once per new token,
right after that token's logits are computed. The first call ends the prefill (the prompt's forward
pass, compression included); the others follow one decode forward each.

- CPU: ``time.perf_counter()`` when the call happens (the forward has finished: CPU ops are synchronous).
- CUDA: a ``torch.cuda.Event(enable_timing=True)`` recorded on the current stream, so the time is when the
  GPU reaches that point, not when Python enqueued the work; the events are read (one synchronisation)
  only after the generation, so the measurement does not slow the loop down.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch


class StepClock:
    """Timestamps of the start of a generation and of every step's logits.

    Args:
        device: the model's device; ``cuda`` selects CUDA events, anything else ``perf_counter``.
        on_first_step: called once, right after the first step's timestamp (e.g. to measure the cache
            as the prefill left it). It runs on the host between two steps and is not part of the prefill.
    """

    def __init__(self, device: torch.device, on_first_step: Callable[[], Any] | None = None):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.on_first_step = on_first_step
        self._marks: list[Any] = []

    def _mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            self._marks.append(event)
        else:
            self._marks.append(time.perf_counter())

    def start(self) -> None:
        """Mark the start of the generation (call right before ``generate``)."""
        self._marks.clear()
        self._mark()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self._mark()
        if len(self._marks) == 2 and self.on_first_step is not None:
            self.on_first_step()
        return scores

    def seconds(self) -> list[float]:
        """Seconds from :meth:`start` to each step's logits, ``[steps]``."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            first = self._marks[0]
            return [first.elapsed_time(e) / 1000.0 for e in self._marks[1:]]
        return [t - self._marks[0] for t in self._marks[1:]]

    def prefill_seconds(self) -> float | None:
        """Seconds from the start to the first token's logits (time to first token), or ``None``."""
        times = self.seconds()
        return times[0] if times else None

    def decode_tokens_per_s(self) -> float | None:
        """Decode steps per second between the first and the last step's logits (``steps - 1`` decode
        forwards), or ``None`` with fewer than two steps."""
        times = self.seconds()
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])
