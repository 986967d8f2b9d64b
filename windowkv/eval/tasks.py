"""The registry of evaluation tasks: a name -> a builder of :class:`~windowkv.eval.examples.Example` lists.

Every builder takes the same keyword arguments and ignores those it has no use for, so a runner can
call any task the same way::

    examples = get_task("ruler/vt")(tokenizer=tok, lengths=[1024], num_examples=2, seed=0)

Common arguments:
    tokenizer: the model's tokenizer (required by the synthetic tasks; LongBench uses it to truncate).
    lengths: prompt lengths in tokens of ``tokenizer`` (synthetic tasks), counted on the user message
        without chat template or answer prefix.
    depths: needle depths in ``[0, 1]`` (``needle`` only).
    num_examples: examples per grid cell (per length, or per length x depth).
    limit: keep at most this many examples in total (the first ones).
    seed: everything synthetic derives from it; the same seed gives the same examples.
    data_path: where the LongBench JSONL files are (a file or a directory).
    max_length: truncate LongBench prompts above this many tokens (LongBench's middle truncation).
    options: task-specific keywords (e.g. ``answer_prefix=False`` for ``needle``, ``num_hops=2``
        for ``ruler/vt``, ``max_new_tokens=...``).
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from windowkv.errors import UnknownComponentError
from windowkv.eval.examples import Example
from windowkv.eval.long_answer import TASK as LIST_RECORDS_TASK
from windowkv.eval.long_answer import list_records_examples
from windowkv.eval.multiturn import TASK as SCBENCH_KV_TASK
from windowkv.eval.multiturn import kv_examples
from windowkv.eval.longbench import LONGBENCH_DATASETS, LONGBENCH_E_DATASETS, longbench_examples
from windowkv.eval.needle import DEFAULT_DEPTHS, DEFAULT_LENGTHS, needle_examples
from windowkv.eval.ruler import RULER_TASKS, ruler_examples

DEFAULT_RULER_LENGTHS = (1024, 2048)


@dataclass(frozen=True)
class Task:
    """A named task: call it with the common keyword arguments to get its examples."""

    name: str
    description: str
    make: Callable[..., list[Example]]
    needs_tokenizer: bool = True

    def __call__(self, *, tokenizer: Any = None, lengths: Sequence[int] | None = None,
                 depths: Sequence[float] | None = None, num_examples: int = 1, limit: int | None = None,
                 seed: int = 0, data_path: Any = None, max_length: int | None = None,
                 **options: Any) -> list[Example]:
        if self.needs_tokenizer and tokenizer is None:
            raise ValueError(f"task {self.name!r} needs the model's tokenizer (lengths are counted in its tokens)")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 (got {limit})")
        common = dict(tokenizer=tokenizer, lengths=lengths, depths=depths, num_examples=num_examples,
                      limit=limit, seed=seed, data_path=data_path, max_length=max_length)
        try:
            examples = self.make(common, **options)
        except TypeError as exc:
            if "unexpected keyword argument" in str(exc):
                raise TypeError(f"task {self.name!r}: {exc}") from None
            raise
        examples = examples[:limit] if limit is not None else examples
        ids = [e.id for e in examples]
        if len(set(ids)) != len(ids):  # a bug in a builder, never the user's fault
            raise RuntimeError(f"task {self.name!r} produced duplicate example ids")
        return examples


def _needle(common: dict[str, Any], **options: Any) -> list[Example]:
    return needle_examples(common["tokenizer"], common["lengths"] or DEFAULT_LENGTHS,
                           common["depths"] if common["depths"] is not None else DEFAULT_DEPTHS,
                           samples=common["num_examples"], seed=common["seed"], **options)


def _ruler(name: str) -> Callable[..., list[Example]]:
    def make(common: dict[str, Any], **options: Any) -> list[Example]:
        return ruler_examples(name, common["tokenizer"], common["lengths"] or DEFAULT_RULER_LENGTHS,
                              samples=common["num_examples"], seed=common["seed"], **options)
    return make


def _longbench(dataset: str) -> Callable[..., list[Example]]:
    def make(common: dict[str, Any]) -> list[Example]:
        return longbench_examples(dataset, path=common["data_path"], tokenizer=common["tokenizer"],
                                  max_length=common["max_length"], limit=common["limit"])
    return make


def _list_records(common: dict[str, Any], **options: Any) -> list[Example]:
    return list_records_examples(common["tokenizer"], common["lengths"] or DEFAULT_RULER_LENGTHS,
                                 samples=common["num_examples"], seed=common["seed"], **options)


def _scbench_kv(common: dict[str, Any], **options: Any) -> list[Example]:
    examples = kv_examples(common["tokenizer"], common["lengths"] or DEFAULT_RULER_LENGTHS,
                           samples=common["num_examples"], seed=common["seed"], **options)
    return [single for e in examples for single in e.as_single_turn()]


def _registry() -> dict[str, Task]:
    tasks = {"needle": Task("needle", "needle in a haystack over lengths x depths (exact match, Rouge-1)", _needle)}
    tasks[LIST_RECORDS_TASK] = Task(LIST_RECORDS_TASK, "long answer: copy every record of the context in order "
                                    "(exact record recall; num_items=..., 14 new tokens per record)", _list_records)
    tasks[SCBENCH_KV_TASK] = Task(SCBENCH_KV_TASK, "SCBench-style keys in one context, one question per turn "
                                  "(retrieval, multi-hop, aggregation); here query-aware, `windowkv multiturn` "
                                  "for one compressed context", _scbench_kv)
    for name, build in RULER_TASKS.items():
        doc = (build.__doc__ or name).strip().splitlines()[0]
        tasks[f"ruler/{name}"] = Task(f"ruler/{name}", doc, _ruler(name))
    for dataset in LONGBENCH_DATASETS:
        tasks[f"longbench/{dataset}"] = Task(f"longbench/{dataset}", f"LongBench {dataset}", _longbench(dataset),
                                             needs_tokenizer=False)
    for dataset in LONGBENCH_E_DATASETS:
        tasks[f"longbench/{dataset}_e"] = Task(f"longbench/{dataset}_e", f"LongBench-E {dataset}",
                                               _longbench(f"{dataset}_e"), needs_tokenizer=False)
    return tasks


#: every known task, by name
TASKS: dict[str, Task] = _registry()


def task_names() -> list[str]:
    """The names of every known task."""
    return list(TASKS)


def get_task(name: str) -> Task:
    """The task called ``name``.

    Raises:
        UnknownComponentError: (a ``KeyError``) naming the closest known task and listing them all.
    """
    try:
        return TASKS[name]
    except KeyError:
        close = difflib.get_close_matches(name, TASKS, n=1, cutoff=0.5)
        raise UnknownComponentError("task", name, list(TASKS), close[0] if close else None) from None


def expand_tasks(patterns: str | Iterable[str]) -> list[str]:
    """Task names from names, families and globs: ``"ruler"`` is every ``ruler/*`` task.

    ``"longbench"`` is the 21 LongBench datasets (not LongBench-E: ask ``"longbench/*_e"``); a comma
    separated string is split. The order follows the patterns, each name once.
    """
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    out: list[str] = []
    for pattern in patterns:
        if pattern in TASKS:
            matched = [pattern]
        elif pattern in ("ruler", "longbench"):
            matched = [n for n in TASKS if n.startswith(pattern + "/") and not n.endswith("_e")]
        else:
            matched = fnmatch.filter(TASKS, pattern)
        if not matched:
            get_task(pattern)  # raises with a suggestion
        out.extend(n for n in matched if n not in out)
    return out


def build_examples(name: str, **kwargs: Any) -> list[Example]:
    """``get_task(name)(**kwargs)``."""
    return get_task(name)(**kwargs)
