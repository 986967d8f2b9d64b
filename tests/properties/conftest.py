"""The property tests run many tiny tensor operations: one intra-op thread is faster than two there
(no thread hand-off per op) and leaves the other core to the rest of the machine."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_thread_per_module(one_torch_thread):
    yield
