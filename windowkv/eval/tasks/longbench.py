"""The LongBench and LongBench-E datasets as task components (data and prompts: :mod:`windowkv.eval.longbench`)."""

from __future__ import annotations

from typing import Any, ClassVar

from windowkv.eval.examples import Example
from windowkv.eval.longbench import LONGBENCH_DATASETS, LONGBENCH_E_DATASETS, longbench_examples
from windowkv.eval.tasks.base import Task


class LongBenchTask(Task):
    """One LongBench dataset read from local JSONL (``data_path``), prompts built as LongBench's ``pred.py``."""

    dataset: ClassVar[str] = ""
    needs_tokenizer: ClassVar[bool] = False

    def examples(self, *, tokenizer: Any, data_path: Any, max_length: int | None,
                 limit: int | None) -> list[Example]:
        return longbench_examples(self.dataset, path=data_path, tokenizer=tokenizer, max_length=max_length,
                                  limit=limit)


def longbench_task(dataset: str) -> type[LongBenchTask]:
    """The task class of LongBench ``dataset`` (``"hotpotqa"``, or ``"hotpotqa_e"`` for LongBench-E)."""
    title = "".join(p.capitalize() for p in dataset.replace("-", "_").split("_"))
    label = f"LongBench-E {dataset[:-2]}" if dataset.endswith("_e") else f"LongBench {dataset}"
    return type(f"LongBench{title}Task", (LongBenchTask,), {
        "__module__": __name__, "__doc__": label, "name": f"longbench/{dataset}", "dataset": dataset,
        "description": label})


LONGBENCH_TASK_CLASSES: tuple[type[LongBenchTask], ...] = (
    *(longbench_task(d) for d in LONGBENCH_DATASETS), *(longbench_task(f"{d}_e") for d in LONGBENCH_E_DATASETS))
globals().update({cls.__name__: cls for cls in LONGBENCH_TASK_CLASSES})  # importable: longbench.LongBenchHotpotqaTask
