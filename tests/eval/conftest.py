"""Tokenizers for the evaluation tests: a tiny byte-level BPE trained in memory (fast and real).

Lengths in windowkv.eval are counted with the model's tokenizer; any Hugging Face fast tokenizer
works, so the tests train a small one on the haystack grammar instead of loading a model's.
"""

from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerFast

from windowkv.testing import SMALL_CHAT_TEMPLATE as CHAT_TEMPLATE


def train_tokenizer(chat_template: str | None = CHAT_TEMPLATE) -> PreTrainedTokenizerFast:
    """A 600-token byte-level BPE trained on haystack text, word lists and digits (windowkv.testing's)."""
    from windowkv.testing import small_tokenizer

    return small_tokenizer(chat_template)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """A real fast tokenizer with a ChatML chat template."""
    return train_tokenizer()


@pytest.fixture(scope="session")
def plain_tokenizer() -> PreTrainedTokenizerFast:
    """The same tokenizer without a chat template."""
    return train_tokenizer(chat_template=None)
