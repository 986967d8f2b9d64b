"""Evaluation data and metrics: needle-in-a-haystack, RULER-style tasks and LongBench.

The pieces a runner needs::

    from windowkv.eval import get_task, render_prompt, score_example

    for example in get_task("needle")(tokenizer=tok, lengths=[1024], depths=[0.5]):
        text = render_prompt(tok, example)              # chat-wrapped user message + answer prefix
        prediction = ...                                # generate example.max_new_tokens tokens
        scores = score_example(example, prediction)     # {"needle_exact": 1.0, "rouge1": 0.9}

A run's rows (``results.jsonl``) are :class:`ResultRow` records (:func:`windowkv.eval.results.read_rows`).
"""

from windowkv.eval.examples import Example, has_chat_template, render_prompt, uses_chat_template
from windowkv.eval.metrics import METRICS, get_metric, postprocess, score_example
from windowkv.eval.rows import ResultRow
from windowkv.eval.tasks import TASKS, Task, build_examples, expand_tasks, get_task, task_names

__all__ = [
    "Example",
    "METRICS",
    "ResultRow",
    "TASKS",
    "Task",
    "build_examples",
    "expand_tasks",
    "get_metric",
    "get_task",
    "has_chat_template",
    "postprocess",
    "render_prompt",
    "score_example",
    "task_names",
    "uses_chat_template",
]
