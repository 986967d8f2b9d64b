"""Meta-tests of the documentation (docs/, mkdocs.yml): the docs cannot drift from the code.

- every hook of ``windowkv/plugins/hookspecs.py`` has a heading in ``docs/reference/hooks.md``;
- every built-in component and preset has a heading in ``docs/reference/components.md``;
- the generated reference pages equal the output of ``scripts/gen_docs_reference.py``;
- every Python snippet under ``docs/snippets/`` runs, with ``windowkv.models.load_model`` replaced by a
  tiny random-weight model and a byte-level tokenizer built in memory (never the SmolLM2 model);
- every ``--8<--`` include in a page names an existing file (and section), and every repository path
  a page names in backticks exists;
- no Markdown page (README, docs/, benchmarks/, plugins/) names a path of one particular machine
  (``/work/...``, ``/root/...``, a venv under ``/tmp``): its commands run from a clean clone;
- ``mkdocs build --strict`` succeeds (skipped, with the reason, when mkdocs is not installed).
"""

from __future__ import annotations

import importlib.util
import re
import runpy
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SNIPPETS = DOCS / "snippets"
GENERATOR = ROOT / "scripts" / "gen_docs_reference.py"
EXAMPLE_PLUGIN = "windowkv-example-scorer"
#: snippets that need the example plugin distribution installed (its entry point, not just its code);
#: the ``example_plugin`` fixture (tests/conftest.py) provides it
NEEDS_EXAMPLE_PLUGIN = {"use_value_norm.py"}


def _generator():
    spec = importlib.util.spec_from_file_location("gen_docs_reference", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _builtin_registries():
    from windowkv.plugins import build_registries, get_plugin_manager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_registries(get_plugin_manager(autoload=False))


def _headings(page: Path) -> list[str]:
    """The text of every Markdown heading of ``page``, without backticks and ``{#anchor}`` attributes."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [re.sub(r"\s*\{#[^}]*\}\s*$", "", m).replace("`", "").strip()
            for m in re.findall(r"^#{1,6}\s+(.*)$", text, flags=re.M)]


# ----------------------------------------------------------------------------------- reference pages


def test_every_hook_has_a_heading_in_the_hooks_reference():
    from windowkv.plugins import hookspecs

    hooks = sorted(name for name in dir(hookspecs) if name.startswith("windowkv_"))
    assert hooks, "no windowkv_* hook found in windowkv/plugins/hookspecs.py"
    headings = set(_headings(DOCS / "reference" / "hooks.md"))
    missing = [h for h in hooks if h not in headings]
    assert not missing, f"hooks without a heading in docs/reference/hooks.md: {missing}"


def test_every_builtin_component_and_preset_is_in_the_components_reference():
    headings = _headings(DOCS / "reference" / "components.md")
    registries = _builtin_registries()
    entries = registries.all_entries()
    assert {e.kind for e in entries} >= {"scorer", "selector", "policy"}
    missing = [f"{e.kind} {e.name}" for e in entries if e.name not in headings]
    assert not missing, f"built-ins without a heading in docs/reference/components.md: {missing}"


def test_generated_reference_is_up_to_date():
    generator = _generator()
    stale = [str(p.relative_to(ROOT)) for p in generator.stale()]
    assert not stale, f"out of date: {stale}; run: python scripts/gen_docs_reference.py and commit the result"


def test_reference_generation_ignores_installed_third_party_plugins():
    """The reference documents windowkv itself: an installed plugin's component never shows up."""
    text = (DOCS / "reference" / "components.md").read_text(encoding="utf-8")
    assert "value_norm" not in text and "provided by `windowkv-" not in text


# ----------------------------------------------------------------------------------- snippets


def tiny_tokenizer():
    """A byte-level tokenizer (every byte a token, ids 3-258) with a chat template, built in memory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, **{c: i + 3 for i, c in enumerate(alphabet)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                "{% if add_generation_prompt %}<assistant>{% endif %}")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   padding_side="left", chat_template=template)


def tiny_load_model(name=None, **kwargs):
    """Stands in for ``windowkv.models.load_model`` in the snippets: a 4-layer random Llama (GQA)."""
    import torch
    import transformers

    tokenizer = tiny_tokenizer()
    config = transformers.LlamaConfig(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        intermediate_size=128, vocab_size=len(tokenizer), max_position_embeddings=8192,
        attn_implementation=kwargs.get("attn_implementation", "sdpa"), pad_token_id=0, bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    model.generation_config.pad_token_id = 0
    return model, tokenizer


SNIPPET_FILES = sorted(p for p in SNIPPETS.glob("*.py") if not p.name.startswith("_"))


def test_there_are_snippets():
    assert len(SNIPPET_FILES) >= 4


@pytest.mark.parametrize("path", SNIPPET_FILES, ids=[p.name for p in SNIPPET_FILES])
def test_snippet_runs(path, monkeypatch, capsys, request):
    import windowkv.models

    if path.name in NEEDS_EXAMPLE_PLUGIN:
        request.getfixturevalue("example_plugin")  # as if pip-installed, for this test only
    monkeypatch.setattr(windowkv.models, "load_model", tiny_load_model)
    monkeypatch.chdir(SNIPPETS)  # snippets name their config files relative to their own directory
    monkeypatch.syspath_prepend(str(SNIPPETS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        runpy.run_path(str(path), run_name="__main__")
    capsys.readouterr()


# ----------------------------------------------------------------------------------- includes and build


def _includes() -> list[tuple[Path, str, str | None]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for target in re.findall(r'^\s*-{1,2}8<-{1,2}\s+"([^"]+)"', page.read_text(encoding="utf-8"), flags=re.M):
            file, _, section = target.partition(":")
            found.append((page, file, section or None))
    return found


def test_every_include_names_an_existing_file_and_section():
    includes = _includes()
    assert includes, "no --8<-- includes found in docs/"
    for page, file, section in includes:
        where = f"{page.relative_to(ROOT)} includes {file}"
        path = ROOT / file
        assert path.is_file(), f"{where}: no such file"
        if section and not section.isdigit():
            text = path.read_text(encoding="utf-8")
            assert f"[start:{section}]" in text and f"[end:{section}]" in text, f"{where}: no section {section!r}"


def test_example_plugin_code_is_included_not_copied():
    """The scorer tutorial shows the example plugin's real files, so the page cannot rot."""
    included = {file for _, file, _ in _includes()}
    for file in ("pyproject.toml", "windowkv_example_scorer/plugin.py", "windowkv_example_scorer/value_norm.py",
                 "tests/test_value_norm.py"):
        assert f"plugins/{EXAMPLE_PLUGIN}/{file}" in included


def test_every_repository_path_named_in_the_docs_exists():
    """`tests/hf/test_cache.py`, `windowkv/hf/`, ...: a renamed file or directory breaks this test, not the reader."""
    pattern = re.compile(r"`((?:windowkv|tests|plugins|scripts|docs|benchmarks)/[\w./-]*)`")
    missing = []
    for page in sorted(DOCS.rglob("*.md")):
        for path in pattern.findall(page.read_text(encoding="utf-8")):
            if not (ROOT / path).exists():
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert not missing, "paths named in the docs that do not exist:\n" + "\n".join(missing)


#: a path that exists on one machine only: a home or work directory, or an interpreter outside the repository
MACHINE_PATH = re.compile(r"(?<![\w.~-])(?:/(?:work|root|home|Users|mnt)/\S*"
                          r"|/tmp/\S*venv\S*|/(?:usr|opt)/\S*python\S*|[A-Z]:\\Users\\\S*)")


def _markdown_pages() -> list[Path]:
    pages = [ROOT / "README.md"]
    for folder in ("docs", "benchmarks", "plugins"):
        pages += sorted((ROOT / folder).rglob("*.md"))
    return pages


def test_no_page_names_a_path_of_one_machine():
    """Commands in the docs run from a clean clone: `.venv/bin/python ...`, never `/work/venv/bin/python`."""
    pages = _markdown_pages()
    assert ROOT / "benchmarks" / "README.md" in pages and len(pages) > 5
    found = [f"{page.relative_to(ROOT)}:{number}: {match}"
             for page in pages
             for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
             for match in MACHINE_PATH.findall(line)]
    assert not found, "paths of one machine in the docs (use .venv/bin/... or a relative path):\n" + "\n".join(found)


def test_the_machine_path_pattern():
    for bad in ("/work/venv/bin/python x.py", "$ /root/.cache/windowkv", "/home/me/windowkv/.venv/bin/python",
                "/tmp/fresh/.venv/bin/python", "/usr/local/bin/python3 -m windowkv", "C:\\Users\\me\\x"):
        assert MACHINE_PATH.search(bad), bad
    for good in (".venv/bin/python benchmarks/bench_selection.py", "~/.cache/windowkv", "`windowkv/models.py`",
                 "https://github.com/org/windowkv/work/", "runs/demo/results.jsonl", "--out /tmp/run"):
        assert not MACHINE_PATH.search(good), good


def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        pytest.skip("mkdocs and mkdocstrings are not installed: pip install -e '.[docs]' to build the docs")
    if importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs-material is not installed: pip install -e '.[docs]' to build the docs")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "site" / "reference" / "components" / "index.html").is_file()
