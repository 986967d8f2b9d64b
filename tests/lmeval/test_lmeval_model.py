"""The lm-eval model ``windowkv``: registration, model_args errors, and scores that compression really changes.

Every check runs lm-eval's own machinery (registry, argument strings, TaskManager over the local-file tasks in
``tasks/``, ``simple_evaluate``) on a tiny random-weight Llama saved to disk.
"""

from __future__ import annotations

import math

import pytest

from tests.lmeval.conftest import TASKS_DIR, make_lm
from windowkv.errors import ConfigError

LOGLIKELIHOOD_TASK = "windowkv_magic_ll"
CHOICE_TASK = "windowkv_magic_mc"
GENERATE_TASK = "windowkv_magic_gen"
#: far above every prompt of the tasks: nothing is evicted
NO_EVICTION = 100_000


def evaluate(lm, task: str, batch_size: int = 2) -> list:
    """Per-document responses of ``lm`` on ``task`` (lm-eval's ``filtered_resps``), in document order."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    lm.batch_size_per_gpu = batch_size
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)  # our local tasks only
    out = simple_evaluate(model=lm, tasks=[task], task_manager=manager,
                          log_samples=True, bootstrap_iters=0, random_seed=0, numpy_random_seed=0,
                          torch_random_seed=0, fewshot_random_seed=0)
    samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
    return [s["filtered_resps"] for s in samples]


def logprobs(responses: list) -> list[float]:
    values = []
    for response in responses:
        for item in response:
            values.append(float(item[0]) if isinstance(item, (list, tuple)) else float(item))
    return values


@pytest.fixture(scope="module")
def hf_lm(tiny_model_dir):
    return make_lm("hf", tiny_model_dir, batch_size=2)


def test_windowkv_is_registered_with_lm_eval():
    import windowkv.lmeval
    from lm_eval.api.registry import get_model

    assert get_model("windowkv") is windowkv.lmeval.WindowKVLM


def test_bad_model_args_are_named_before_any_model_loads(monkeypatch, tiny_model_dir):
    from lm_eval.models.huggingface import HFLM

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the model_args were checked")

    monkeypatch.setattr(HFLM, "__init__", refuse)
    with pytest.raises(ConfigError, match=r"model_args.policy.*Did you mean 'snapkv'") as info:
        make_lm("windowkv", tiny_model_dir, policy="snapkb")
    assert "pyramidkv" in str(info.value) and "windowkv" in str(info.value)  # the registered names
    with pytest.raises(ConfigError, match=r"model_args.budget"):
        make_lm("windowkv", tiny_model_dir, policy="snapkv", budget=-3)
    with pytest.raises(ConfigError, match=r"model_args.policy"):
        make_lm("windowkv", tiny_model_dir, policy="missing_policy.yaml")
    with pytest.raises(ConfigError, match=r"model_args.task_label.*qa"):
        make_lm("windowkv", tiny_model_dir, policy="windowkv", task_label="poetry")


@pytest.mark.parametrize("task", [LOGLIKELIHOOD_TASK, CHOICE_TASK])
def test_a_budget_above_the_prompt_scores_like_hf(task, hf_lm, tiny_model_dir, in_tasks_dir):
    plain = logprobs(evaluate(hf_lm, task))
    kept_all = logprobs(evaluate(make_lm("windowkv", tiny_model_dir, policy="snapkv", budget=NO_EVICTION,
                                         batch_size=2), task))
    assert len(plain) == len(kept_all) > 0
    assert kept_all == pytest.approx(plain, abs=2e-4)


@pytest.mark.parametrize("policy", ["snapkv", "streaming_llm"])
def test_a_small_budget_changes_the_scores(policy, hf_lm, tiny_model_dir, in_tasks_dir):
    plain = logprobs(evaluate(hf_lm, LOGLIKELIHOOD_TASK))
    small = logprobs(evaluate(make_lm("windowkv", tiny_model_dir, policy=policy, budget=16, batch_size=2),
                              LOGLIKELIHOOD_TASK))
    assert all(math.isfinite(v) for v in small)
    assert max(abs(a - b) for a, b in zip(plain, small, strict=True)) > 1e-3


def test_batches_score_each_request_as_alone(tiny_model_dir, in_tasks_dir):
    lm = make_lm("windowkv", tiny_model_dir, policy="windowkv", task_label="qa", budget=16, batch_size=1)
    alone = logprobs(evaluate(lm, CHOICE_TASK, batch_size=1))
    batched = logprobs(evaluate(lm, CHOICE_TASK, batch_size=5))
    assert batched == pytest.approx(alone, abs=2e-4)


def test_generation_runs_under_the_policy(monkeypatch, hf_lm, tiny_model_dir, in_tasks_dir):
    from windowkv.policies import Policy

    applied = []
    original = Policy.apply

    def spy(self, *args, **kwargs):
        applied.append(self.budget)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Policy, "apply", spy)
    plain = evaluate(hf_lm, GENERATE_TASK)
    kept_all = evaluate(make_lm("windowkv", tiny_model_dir, policy="snapkv", budget=NO_EVICTION, batch_size=2),
                        GENERATE_TASK)
    assert kept_all == plain and applied  # batched, left-padded generation; nothing evicted: hf's text
    applied.clear()
    small = evaluate(make_lm("windowkv", tiny_model_dir, policy="snapkv", budget=16, batch_size=2), GENERATE_TASK)
    assert len(small) == len(plain) and applied and all(a.tokens == 16 for a in applied)


def test_rolling_loglikelihood_compresses_nothing(hf_lm, tiny_model_dir):
    from lm_eval.api.instance import Instance

    text = (TASKS_DIR / "magic_numbers.jsonl").read_text().splitlines()[0][:600]
    request = [Instance("loglikelihood_rolling", {}, (text,), 0)]
    plain = hf_lm.loglikelihood_rolling(request, disable_tqdm=True)
    lm = make_lm("windowkv", tiny_model_dir, policy="snapkv", budget=16, batch_size=2)
    assert lm.loglikelihood_rolling(request, disable_tqdm=True) == pytest.approx(plain, abs=1e-4)
