"""A benchmark plugin in one file: a task and a metric (docs: Write a benchmark plugin)."""

# --8<-- [start:task]
from typing import Any, ClassVar, Sequence

from pydantic import Field

from windowkv.eval import Example
from windowkv.eval.haystack import fit_length, sentences
from windowkv.eval.metrics import Metric
from windowkv.eval.tasks import Task


class FirstSentenceTask(Task):
    """Repeat the first sentence of a long text: the first tokens must survive compression."""

    name: ClassVar[str] = "first_sentence"
    description: ClassVar[str] = "repeat the first sentence of a long text"

    max_new_tokens: int = Field(24, ge=1, description="Tokens to generate.")

    def examples(self, *, tokenizer: Any, lengths: Sequence[int] | None, seed: int) -> list[Example]:
        out = []
        for length in lengths or (512,):
            text = sentences(seed)
            pool = [next(text) for _ in range(2000)]

            def build(n: int) -> str:
                return " ".join(pool[:n + 1]) + "\nRepeat the first sentence of the text above."

            n, prompt, tokens = fit_length(build, tokenizer, length)
            out.append(Example(id=f"first-L{length}-s{seed}", task=self.name, prompt=prompt, answers=[pool[0]],
                               metric="token_recall", max_new_tokens=self.max_new_tokens, length=length,
                               prompt_tokens=tokens))
        return out


class TokenRecallMetric(Metric):
    """The share of the gold answer's words found in the prediction (best answer)."""

    name: ClassVar[str] = "token_recall"
    description: ClassVar[str] = "share of the gold words found in the prediction"

    def score(self, prediction: str, answers: Sequence[str], *, all_classes: Sequence[str] = ()) -> float:
        said = set(prediction.lower().split())
        return max((sum(w in said for w in a.lower().split()) / max(len(a.split()), 1) for a in answers),
                   default=0.0)
# --8<-- [end:task]

# --8<-- [start:hooks]
import windowkv


@windowkv.hookimpl
def windowkv_register_tasks():
    return [FirstSentenceTask]


@windowkv.hookimpl
def windowkv_register_metrics():
    return [TokenRecallMetric]
# --8<-- [end:hooks]

# --8<-- [start:use]
import sys

from windowkv.eval import score_example
from windowkv.eval.tasks import build_task_examples
from windowkv.models import load_model
from windowkv.testing import check_metric_contract, check_task_contract, fresh_registries

registries = fresh_registries(sys.modules[__name__])  # built-ins + this module, as an installed plugin would be
_, tokenizer = load_model()
check_task_contract(FirstSentenceTask(), tokenizer=tokenizer, lengths=[300], registries=registries)
check_metric_contract(TokenRecallMetric())
built = build_task_examples(["first_sentence", "needle"], tokenizer=tokenizer, lengths=[300], depths=[0.5],
                            registries=registries)
example = built.examples[0]
print(score_example(example, example.answers[0], registries=registries))  # {'token_recall': 1.0}
# --8<-- [end:use]
