"""The property tests run many tiny tensor operations: one intra-op thread is faster than two there
(no thread hand-off per op) and leaves the other core to the rest of the machine."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
