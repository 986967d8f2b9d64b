"""The encoder classifier's training and loading path, on a tiny random-weight BERT built in memory."""

from __future__ import annotations

import pytest
import torch

from windowkv.classifiers import ClassifierLoadError, EncoderClassifier
from windowkv.classifiers.prompt_set import load
from windowkv.classifiers.text import FAMILIES
from windowkv.classifiers.training import evaluate, train_encoder
from windowkv.testing import check_classifier_contract

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from windowkv.classifiers.embedding import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=len(FAMILIES))
    torch.manual_seed(0)
    return tokenizer, BertForSequenceClassification(config)


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    tokenizer, model = tiny_bert
    rows = [r for r in load("train")][::40]
    out = tmp_path_factory.mktemp("encoder")
    result = train_encoder(rows, out, model=model, tokenizer=tokenizer, head=24, tail=24, epochs=1, batch=4)
    assert result["path"] == str(out)
    return out


def test_fine_tuned_encoder_saves_safetensors_and_json_only(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"model.safetensors", "config.json", "windowkv_classifier.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pth", ".pkl")) for n in names)


def test_fine_tuned_encoder_loads_and_keeps_the_contract(trained):
    classifier = EncoderClassifier(model=str(trained))
    check_classifier_contract(classifier)
    result = evaluate(classifier, load("val")[:16])
    assert 0 <= result["accuracy"] <= 1 and result["prompts"] == 16
    family = EncoderClassifier(model=str(trained), level="family")
    assert {p.label for p in family(["Summarise: a b c", "Q: where?"])} <= set(FAMILIES)


def test_long_prompts_are_read_at_their_edges_only(trained):
    classifier = EncoderClassifier(model=str(trained))
    instruction = "Write a summary of the report."
    long = instruction + " filler words here." * 30_000 + instruction  # ~100k tokens
    assert classifier([long])[0].label in ("qa", "other")


def test_missing_or_corrupt_encoder_is_a_clear_error(tmp_path, trained):
    with pytest.raises(ClassifierLoadError, match="train one with `windowkv classifier train encoder"):
        EncoderClassifier(model=str(tmp_path / "nope"))(["What is it?"])
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in trained.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ClassifierLoadError, match="cannot load the encoder classifier"):
        EncoderClassifier(model=str(broken))(["What is it?"])


def test_latency_reports_wall_cpu_and_a_baseline_ratio(trained):
    from windowkv.classifiers.training import latency

    timing = latency(EncoderClassifier(model=str(trained)), tokens=512, repeats=3, warmup=1)
    assert {"wall_ms", "cpu_ms", "baseline_ms", "ratio", "threads", "load"} <= set(timing)
    assert timing["wall_ms"] > 0 and timing["baseline_ms"] > 0 and timing["threads"] == 1
    assert timing["ratio"] == pytest.approx(timing["wall_ms"] / timing["baseline_ms"], rel=0.05)
