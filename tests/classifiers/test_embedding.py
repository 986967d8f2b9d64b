"""The embedding classifier with the real offline MiniLM and the shipped head."""

from __future__ import annotations

import logging

import pytest

from windowkv.classifiers import ClassifierLoadError, EmbeddingClassifier
from windowkv.classifiers.text import FAMILIES, head_tail_ids
from windowkv.testing import check_classifier_contract

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_embedding_classifier_keeps_the_contract():
    check_classifier_contract(EmbeddingClassifier())


def test_embedding_classifier_tells_localisation_from_aggregation():
    essay = "The harbour town rebuilt its bridges after the storm, and the markets reopened. " * 40
    prompts = [
        f"{essay}\n\nWhich year did the town rebuild its bridges?",
        f"Summarize the following article in three sentences.\n\n{essay}",
        # a bare listing to continue (no instruction); a 9-line toy listing is read as code QA (known limit)
        "import os\n\n\nclass A:\n    def __init__(self, x):\n        self.x = x\n\n    def run(self):\n"
        "        return os.path.join(self.x, 'a')\n\n" * 20 + "def main():\n    a = A(1)\n",
    ]
    assert [p.label for p in EmbeddingClassifier()(prompts)] == ["qa", "other", "other"]
    assert {p.label for p in EmbeddingClassifier(level="family")(prompts)} <= set(FAMILIES)


def test_a_long_prompt_is_never_tokenised_whole():
    from windowkv.classifiers.embedding import load_encoder, minilm_path

    tokenizer, _ = load_encoder(str(minilm_path()))
    seen = []

    class Spy:
        def __call__(self, text, **kw):
            seen.append(len(text))
            return tokenizer(text, **kw)

    text = "Write a summary. " + "word " * 500_000 + " Now write the summary."
    head, tail = head_tail_ids(Spy(), text, 256, 256)
    assert len(head) == len(tail) == 256 and max(seen) < 10_000
    seen.clear()  # one 400k-character "word": few tokens at each end, and still never the whole text
    head, tail = head_tail_ids(Spy(), "x" * 400_000, 32, 32, paragraphs=True)
    assert 0 < len(head) <= 32 and 0 < len(tail) <= 32 and max(seen) <= 32 * 64


def test_empty_prompt_falls_back_and_logs_once(caplog):
    classifier = EmbeddingClassifier()
    with caplog.at_level(logging.WARNING, logger="windowkv.classifiers"):
        got = classifier(["", "  \n"]) + classifier([""])
    assert [p.label for p in got] == ["other"] * 3 and all(p.confidence == 0.5 for p in got)
    assert sum("whitespace-only" in r.message for r in caplog.records) <= 1


def test_none_prompt_is_a_clear_error():
    with pytest.raises(ValueError, match="needs the prompt text"):
        EmbeddingClassifier()([None])


def test_missing_or_corrupt_head_and_bad_encoder_are_clear_errors(tmp_path):
    with pytest.raises(ClassifierLoadError, match="train one with"):
        EmbeddingClassifier(weights=str(tmp_path / "none.safetensors"))(["What is it?"])
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    bad.with_suffix(".json").write_text('{"classes": ["qa", "other"], "features": 768}')
    with pytest.raises(ClassifierLoadError, match="corrupt classifier head"):
        EmbeddingClassifier(weights=str(bad))(["What is it?"])
    with pytest.raises(ClassifierLoadError, match="cannot load the sentence encoder"):
        EmbeddingClassifier(encoder=str(tmp_path / "no-such-encoder"))(["What is it?"])


def test_a_head_reading_a_layer_the_encoder_lacks_is_a_clear_error(tmp_path):
    import json
    import shutil

    from windowkv.classifiers.embedding import shipped_head

    head = tmp_path / "head.safetensors"
    shutil.copy(shipped_head(), head)
    config = json.loads(open(shipped_head()[: -len(".safetensors")] + ".json").read())
    assert config["layers"] == 4  # the shipped head pools MiniLM after 4 of its 6 layers
    head.with_suffix(".json").write_text(json.dumps({**config, "layers": 9}))
    with pytest.raises(ClassifierLoadError, match="reads layer 9 of the sentence encoder"):
        EmbeddingClassifier(weights=str(head))(["What is it?"])
