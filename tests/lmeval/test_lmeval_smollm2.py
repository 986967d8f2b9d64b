"""The lm-eval model ``windowkv`` on the embedded SmolLM2-135M-Instruct (slow, bounded: 3 documents, one load)."""

from __future__ import annotations

import pytest

from tests.lmeval.conftest import TASKS_DIR
from tests.lmeval.test_lmeval_model import LOGLIKELIHOOD_TASK, NO_EVICTION, logprobs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    from windowkv.models import load_model

    return load_model()


def _evaluate(lm, limit: int = 3) -> list[float]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    out = simple_evaluate(model=lm, tasks=[LOGLIKELIHOOD_TASK], limit=limit, log_samples=True, bootstrap_iters=0,
                          task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False))
    return logprobs([s["filtered_resps"] for s in sorted(out["samples"][LOGLIKELIHOOD_TASK],
                                                         key=lambda s: s["doc_id"])])


def test_smollm2_scores_equal_hf_with_a_large_budget_and_differ_with_a_small_one(smollm2, in_tasks_dir):
    from lm_eval.models.huggingface import HFLM

    from windowkv.lmeval import WindowKVLM

    model, tokenizer = smollm2
    plain = _evaluate(HFLM(pretrained=model, tokenizer=tokenizer, batch_size=3))
    kept_all = _evaluate(WindowKVLM(pretrained=model, tokenizer=tokenizer, policy="windowkv", task_label="qa",
                                    budget=NO_EVICTION, batch_size=3))
    small = _evaluate(WindowKVLM(pretrained=model, tokenizer=tokenizer, policy="windowkv", task_label="qa",
                                 budget=32, batch_size=3))
    assert kept_all == pytest.approx(plain, abs=1e-3)
    assert max(abs(a - b) for a, b in zip(plain, small, strict=True)) > 1e-2
