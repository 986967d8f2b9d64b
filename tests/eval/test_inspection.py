"""``windowkv inspect`` on a tiny random Llama: kept masks, attention mass, Jaccard, lost layers, PNG + JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.eval.tiny_model import save_tiny_model
from windowkv import Policy
from windowkv.cli import app
from windowkv.eval.inspection import PromptTooLongError, inspect_prompt, inspection_from_json, jaccard_matrix
from windowkv.eval.needle_prose import needle_prose_example
from windowkv.models import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TEXT = "The treaty of April 4, 1908, cost $53,000,000 in 17 ports. It was signed at noon.\n\n" * 60


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("inspect") / "model", layers=4)


@pytest.fixture(scope="module")
def tiny(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("prose") / "prose.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def test_jaccard_matrix():
    sets = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=bool)
    jac = jaccard_matrix(sets)
    assert jac[0, 1] == pytest.approx(1 / 3) and jac[0, 0] == 1 and jac[2, 2] == 1 and jac[0, 2] == 0
    assert np.allclose(jac, jac.T)


def test_inspection_of_a_compressing_policy(tiny, source):
    model, tok = tiny
    example = needle_prose_example(tok, 400, 0.5, source=source, max_new_tokens=3)
    policy = Policy.from_preset("windowkv", budget=0.12, sharing={"type": "groups", "group_size": 2},
                                allocator={"type": "uniform"}, classifier={"type": "fixed", "label": "qa"})
    result = inspect_prompt(model, tok, policy, example, label="windowkv", budget="0.12")
    layers, length = result.kept.shape
    assert layers == 4 and length == result.prompt_tokens == len(result.tokens)
    assert result.suffix_size == 32 and (result.kept[:, result.suffix_start:] == 1).all()  # suffix never evicted
    review = result.suffix_start
    kept_review = (result.kept[:, :review] > 0).sum(1)
    assert (kept_review <= int(0.12 * review) + 1).all() and (kept_review > 0).all()
    # the suffix queries' attention: each of the s queries distributes a weight of 1
    assert np.allclose(result.attention.sum(1), result.suffix_size, atol=1e-3)
    assert all(0.0 <= m <= 1.0 for m in result.review_mass)
    # layers sharing one leader keep the same positions: Jaccard 1 inside a group
    assert result.leaders == [0, 0, 2, 2]
    assert result.jaccard[0, 1] == pytest.approx(1.0) and result.jaccard[2, 3] == pytest.approx(1.0)
    assert np.allclose(result.jaccard, result.jaccard.T) and np.allclose(np.diag(result.jaccard), 1.0)
    # the needle and its answer are located on the rendered prompt's tokens
    first, last = result.answer_span
    assert result.needle_span[0] <= first < last <= result.needle_span[1]
    digits = "".join(result.tokens[first:last]).replace("Ġ", "")
    assert example.answers[0] in digits
    lost = [i for i in range(layers) if (result.kept[i, first:last] < 1).any()]
    assert result.lost_layers == lost
    data = json.loads(json.dumps(result.to_json()))
    assert data["suffix_start"] == review
    again = inspection_from_json(data)
    assert again.lost_layers == result.lost_layers and again.answer_span == result.answer_span
    assert np.allclose(again.jaccard, result.jaccard, atol=1e-4) and np.array_equal(again.kept > 0, result.kept > 0)


def test_the_full_cache_keeps_everything(tiny, source):
    model, tok = tiny
    example = needle_prose_example(tok, 300, 0.5, source=source, max_new_tokens=2)
    result = inspect_prompt(model, tok, Policy.from_preset("full"), example)
    assert (result.kept == 1).all() and result.lost_layers == [] and result.review_mass == [1.0] * 4


def test_a_prompt_longer_than_the_context_is_refused(tiny, source):
    model, tok = tiny
    example = needle_prose_example(tok, 1020, 0.5, source=source, max_new_tokens=32)
    with pytest.raises(PromptTooLongError, match=r"more than the model's context of 1024 positions"):
        inspect_prompt(model, tok, Policy.from_preset("windowkv", budget=0.25), example)


def test_cli_writes_png_and_json_and_refuses_bad_input(model_dir, source, tmp_path):
    runner = CliRunner()
    args = ["inspect", "--task", "needle_prose", "--length", "300", "-O", f"source={source}", "--model",
            str(model_dir), "-p", "windowkv", "-b", "0.25", "--max-new-tokens", "2", "--out", str(tmp_path)]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "layers that lost part of the answer" in result.output
    (png,) = tmp_path.glob("*.png")
    (js,) = tmp_path.glob("*.json")
    assert png.stat().st_size > 20_000
    data = json.loads(js.read_text())
    assert data["policy"] == "windowkv" and len(data["kept"]) == 4 and len(data["jaccard"]) == 4
    for bad, expected in ((["--task", "ruler/vt"], "--task must be one of needle_prose, needle"),
                          (["--length", "1020", "--max-new-tokens", "32"], "more than the model's context")):
        result = runner.invoke(app, [*args, *bad], catch_exceptions=False)
        assert result.exit_code == 2 and expected in result.output, result.output
