"""Encoder classifier: a fine-tuned BERT-family sequence classifier, WindowKV's own recipe.

WindowKV (arXiv 2503.17922, Sec. 3.1) fine-tunes ``bert-base-cased`` with a 2-way head on
LongBench-style prompts and reads a long prompt's first 256 and last 256 tokens. Its checkpoint is
not public; ``windowkv classifier train encoder`` fine-tunes any HF encoder (the offline
all-MiniLM-L6-v2 by default) on windowkv's prompt set and saves an HF folder: ``config.json``,
``model.safetensors``, tokenizer files and ``windowkv_classifier.json`` (classes, token counts).
windowkv ships no encoder weights (90 MB); the default ``model`` is where the CLI writes them.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

from pydantic import Field

from windowkv.classifiers.learned import LearnedClassifier
from windowkv.classifiers.text import ClassifierLoadError, encoder_inputs

INFO_FILE = "windowkv_classifier.json"


def default_encoder_dir() -> Path:
    """``<user cache>/windowkv/classifiers/encoder``: where ``windowkv classifier train encoder`` writes."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("windowkv")) / "classifiers" / "encoder"


@functools.lru_cache(maxsize=4)
def load_sequence_classifier(path: str, device: str = "cpu") -> tuple[Any, Any, dict[str, Any]]:
    """``(tokenizer, model, info)`` of a fine-tuned classifier folder; safetensors only, cached per process."""
    folder = Path(path)
    if not (folder / INFO_FILE).is_file():
        raise ClassifierLoadError(f"no fine-tuned encoder classifier at {folder} (missing {INFO_FILE}): train "
                                  f"one with `windowkv classifier train encoder --out {folder}`")
    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).to(device).eval()
        if model.config.num_labels != len(info["classes"]):
            raise ValueError(f"{model.config.num_labels} outputs for classes {info['classes']}")
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise ClassifierLoadError(f"cannot load the encoder classifier at {folder}: {exc}") from None
    return tokenizer, model, info


class EncoderClassifier(LearnedClassifier):
    """A fine-tuned sequence classifier reads ``[CLS]`` + the prompt's first and last tokens + ``[SEP]``.

    Empty prompts get ``other`` (logged once); a missing or unreadable ``model`` folder raises
    :class:`~windowkv.classifiers.text.ClassifierLoadError` naming the training command.
    """

    name: ClassVar[str] = "encoder"

    model: Optional[str] = Field(None, description="Folder of a classifier fine-tuned by `windowkv classifier "
                                 "train encoder`; default: <user cache>/windowkv/classifiers/encoder.")
    batch_size: int = Field(8, ge=1, description="Prompts per forward pass.")

    def probabilities(self, texts: Sequence[str]) -> tuple[Any, Sequence[str], int]:
        import torch

        tokenizer, model, info = load_sequence_classifier(self.model or str(default_encoder_dir()), self.device)
        head, tail = info["head_tokens"], info["tail_tokens"]
        probs = []
        for start in range(0, len(texts), self.batch_size):
            inputs = encoder_inputs(tokenizer, texts[start:start + self.batch_size], head, tail)
            with torch.inference_mode():
                logits = model(**{k: v.to(model.device) for k, v in inputs.items()}).logits
            probs.append(torch.softmax(logits.float(), dim=-1).cpu())
        return torch.cat(probs), info["classes"], 8 * max(head, tail)
