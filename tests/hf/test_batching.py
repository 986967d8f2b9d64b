"""Invariant 7 on real models: a left-padded batch gives each row what it gets alone."""

from __future__ import annotations

import pytest
import torch

from windowkv import Policy
from tests.hf.conftest import greedy, prompt, tiny_model


def left_pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(r.shape[1] for r in rows)
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, length - r.shape[1]:] = r[0]
        mask[i, length - r.shape[1]:] = 1
    return ids, mask


@pytest.mark.parametrize("heads", ["shared", "per_kv_head"])
def test_padded_rows_match_rows_alone(family, attn, heads):
    model = tiny_model(family, attn)
    rows = [prompt(120, seed=10), prompt(77, seed=11), prompt(95, seed=12)]
    policy = Policy.from_preset("windowkv", budget=20, sharing={"group_size": 2}, allocator={"group_size": 2},
                                profiles={"qa": {"selector": {"heads": heads}}})
    ids, mask = left_pad(rows)
    with policy.apply(model, task="qa") as handle:
        batched = greedy(model, ids, mask)
        batch_run = handle.last_run
        for i, row in enumerate(rows):
            alone = greedy(model, row)
            assert torch.equal(batched[i], alone[0]), f"row {i}"
            offset = ids.shape[1] - row.shape[1]
            for layer, sel in handle.last_run.selections.items():
                b = batch_run.selections[layer]
                got = b.positions[i][b.valid[i]] - offset
                assert torch.equal(got, sel.positions[0][sel.valid[0]]), (i, layer)


def test_rows_with_different_tasks_get_their_own_profile():
    """One QA row and one summary row in a batch: each gets its profile's suffix and selector."""
    model = tiny_model("llama")
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["<pad>", "<s>", "</s>", "[UNK]"] + [f"w{i}" for i in range(200)]
                                       + ["what", "is", "the", "answer", "?", "summarize", "this", "text", "."])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", padding_side="left")
    filler = " ".join(f"w{i % 200}" for i in range(150))
    texts = [filler + " what is the answer ?", filler + " summarize this text ."]
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    # the keyword classifier reads these word-level toy prompts predictably (the embedding one is for real text)
    policy = Policy.from_preset("windowkv_keyword", budget=16)
    with policy.apply(model, tokenizer) as handle:
        greedy(model, enc["input_ids"], enc["attention_mask"], new=2)
    run = handle.last_run
    assert [p.label for p in run.predictions] == ["qa", "other"]
    assert {g.label: g.suffix_size for g in run.groups} == {"qa": 32, "other": 16}
