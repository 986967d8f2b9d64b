"""Evaluation tasks: registered components (``windowkv_register_tasks``) that build :class:`Example` lists.

::

    from windowkv.eval.tasks import get_task
    examples = get_task("ruler/vt").with_options(num_hops=2).build(tokenizer=tok, lengths=[1024], seed=0)
    examples = get_task("ruler/vt")(tokenizer=tok, lengths=[1024], num_hops=2)   # the same, in one call

A task's options are its pydantic fields (:meth:`Task.with_options`); the run settings (tokenizer,
lengths, depths, num_examples, seed, data_path, max_length, limit) are keyword arguments of
:meth:`Task.build`. Built-ins: ``needle``, ``ruler/*`` and ``longbench/*``; plugins add more with one hook.
"""

from __future__ import annotations

import fnmatch
import traceback
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from windowkv.errors import ConfigError, UnknownComponentError, WindowKVError
from windowkv.eval.examples import Example
from windowkv.eval.tasks.base import RUN_SETTINGS, Task, TaskBuildError
from windowkv.eval.tasks.longbench import LONGBENCH_TASK_CLASSES, LongBenchTask, longbench_task
from windowkv.eval.tasks.lifecycle import ListRecordsTask, ScbenchKvTask
from windowkv.eval.tasks.needle import NeedleTask
from windowkv.eval.tasks.needle_prose import NeedleProseTask
from windowkv.eval.tasks.ruler import DEFAULT_RULER_LENGTHS, RULER_TASK_CLASSES, RulerTask

if TYPE_CHECKING:
    from windowkv.registry import Registries

#: task names that stand for a whole family (``ruler`` = every ``ruler/*`` task but the ``*_e`` ones)
FAMILY_SEPARATOR = "/"


def _registries(registries: Registries | None) -> Registries:
    if registries is not None:
        return registries
    from windowkv.plugins import default_registries

    return default_registries()


def task_names(registries: Registries | None = None) -> list[str]:
    """Every registered task name: ``needle`` first, then in registration order of the plugins."""
    return list(_registries(registries)["task"].registration_order())


def get_task(name: str, registries: Registries | None = None) -> Task:
    """The registered task ``name`` with its default options.

    Raises:
        UnknownComponentError: (a ``KeyError``) naming the closest registered task and listing them all.
    """
    return _registries(registries)["task"].get(name)()


class _TaskTable(Mapping[str, Task]):
    """:data:`TASKS`: a read-only view ``name -> task`` of the registry (plugins included)."""

    def __getitem__(self, name: str) -> Task:
        if name not in _registries(None)["task"]:
            raise KeyError(name)
        return get_task(name)

    def __iter__(self) -> Iterator[str]:
        return iter(task_names())

    def __len__(self) -> int:
        return len(_registries(None)["task"])


#: every registered task by name (a live view of the registry)
TASKS: Mapping[str, Task] = _TaskTable()


def expand_tasks(patterns: str | Iterable[str], registries: Registries | None = None) -> list[str]:
    """Task names from names, families and globs: ``"ruler"`` is every ``ruler/*`` task.

    A family leaves out its ``*_e`` tasks (``"longbench"`` is the 21 LongBench datasets; ask
    ``"longbench/*_e"`` for LongBench-E). A comma separated string is split. The order follows the
    patterns, each name once.

    Raises:
        UnknownComponentError: a pattern that matches no task, with a suggestion.
    """
    names = task_names(registries)
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    out: list[str] = []
    for pattern in patterns:
        if pattern in names:
            matched = [pattern]
        elif any(n.startswith(pattern + FAMILY_SEPARATOR) for n in names):
            matched = [n for n in names if n.startswith(pattern + FAMILY_SEPARATOR) and not n.endswith("_e")]
        else:
            matched = fnmatch.filter(names, pattern)
        if not matched:
            get_task(pattern, registries)  # raises with a suggestion
        out.extend(n for n in matched if n not in out)
    return out


def build_examples(name: str, **kwargs: Any) -> list[Example]:
    """``get_task(name)(**kwargs)``: run settings and task options in one call."""
    return get_task(name)(**kwargs)


# ---------------------------------------------------------------------------- resolving what a run asks for

def resolve_tasks(task: str, subtasks: Sequence[str] | None = None, data: Path | None = None,
                  registries: Registries | None = None) -> list[str]:
    """Task names from a task argument (``needle``, a family such as ``ruler``, a full name or a glob) and
    optional sub-task names (``vt`` for ``ruler/vt``, ``hotpotqa`` for ``longbench/hotpotqa``).

    ``longbench`` without sub-tasks is every dataset with a file in ``data``.

    Raises:
        UnknownComponentError: an unknown task or sub-task, listing the known ones.
        ConfigError: sub-tasks for a task that has none; LongBench without data.
    """
    names = task_names(registries)
    family = [n.split(FAMILY_SEPARATOR, 1)[1] for n in names if n.startswith(task + FAMILY_SEPARATOR)]
    if task in names and not family:
        if subtasks:
            raise ConfigError([("subtasks", f"{task} has no sub-tasks; drop --task")])
        return [task]
    if family:
        if subtasks:
            out = []
            for sub in subtasks:
                full = sub if FAMILY_SEPARATOR in sub else f"{task}{FAMILY_SEPARATOR}{sub}"
                if full not in names:
                    import difflib

                    short = full.split(FAMILY_SEPARATOR, 1)[-1]
                    close = difflib.get_close_matches(short, family, n=1)
                    raise UnknownComponentError(f"{task} task", short, family, close[0] if close else None)
                out.append(full)
            return out
        if task == "longbench":
            return _longbench_in(data)
        return expand_tasks(task, registries)
    return expand_tasks(task, registries)


def _longbench_in(data: Path | None) -> list[str]:
    from windowkv.eval.longbench import LONGBENCH_DATASETS, LONGBENCH_E_DATASETS

    known = list(LONGBENCH_DATASETS) + [f"{d}_e" for d in LONGBENCH_E_DATASETS]
    hint = f"pass --task NAME (known: {', '.join(LONGBENCH_DATASETS)}; '<name>_e' for LongBench-E)"
    if data is None:
        raise ConfigError([("data", f"longbench: {hint} and --data PATH (LongBench's JSONL files)")])
    data = Path(data)
    if data.is_file():
        if data.stem not in known:
            raise ConfigError([("data", f"cannot tell the LongBench dataset of {data.name}: {hint}")])
        return [f"longbench/{data.stem}"]
    found = [f"longbench/{name}" for name in known
             if (data / f"{name}.jsonl").is_file() or (data / "data" / f"{name}.jsonl").is_file()]
    if not found:
        raise ConfigError([("data", f"no LongBench <dataset>.jsonl files in {data}: {hint}")])
    return found


# ---------------------------------------------------------------------------- building, one task at a time

class TaskFailureWarning(UserWarning):
    """A task raised while building its examples (a bug in the task); the other tasks still run."""


@dataclass(frozen=True)
class TaskFailure:
    """A task that raised while building its examples.

    Attributes:
        task: its name.
        provider: the distribution (and version) that registered it.
        error: ``ExceptionType: message``.
        traceback: the formatted traceback.
    """

    task: str
    provider: str
    error: str
    traceback: str

    def message(self) -> str:
        return (f"task {self.task!r} (from {self.provider}) failed while building its examples: {self.error}\n"
                f"{self.traceback}")


@dataclass
class BuiltExamples:
    """The examples of every task that built, and the tasks that failed."""

    examples: list[Example] = field(default_factory=list)
    failures: list[TaskFailure] = field(default_factory=list)


def build_task_examples(names: Sequence[str], *, tokenizer: Any = None, lengths: Sequence[int] | None = None,
                        depths: Sequence[float] | None = None, num_examples: int = 1, limit: int | None = None,
                        seed: int = 0, data_path: Path | None = None, max_length: int | None = None,
                        options: Mapping[str, Any] | None = None,
                        registries: Registries | None = None) -> BuiltExamples:
    """Build the examples of every task in ``names`` (``limit`` per task), each task on its own.

    ``options`` are task options (fields) given to every task; a task without such a field is a
    :class:`~windowkv.errors.ConfigError` naming ``task.<name>.<field>`` and its fields.

    windowkv's own errors (bad settings, missing data: :class:`windowkv.errors.WindowKVError`) propagate:
    they are the user's to fix. Any other exception is a bug in that task: it is
    recorded with the task's name, distribution and traceback (and a :class:`TaskFailureWarning`), and
    the other tasks still build.
    """
    registries = _registries(registries)
    built = BuiltExamples()
    for name in names:
        entry = registries["task"].entry(name)
        task = entry.obj().with_options(**options) if options else entry.obj()
        try:
            built.examples += task.build(tokenizer=tokenizer, lengths=lengths, depths=depths,
                                                num_examples=num_examples, seed=seed, data_path=data_path,
                                                max_length=max_length, limit=limit)
        except WindowKVError as exc:
            if isinstance(exc, TaskBuildError):
                built.failures.append(_failure(name, entry.provider, exc))
                continue
            raise
        except Exception as exc:  # a bug in one task must not take the others down
            built.failures.append(_failure(name, entry.provider, exc))
    for failure in built.failures:
        warnings.warn(failure.message(), TaskFailureWarning, stacklevel=2)
    return built


def _failure(name: str, provider: str, exc: BaseException) -> TaskFailure:
    return TaskFailure(name, provider, f"{type(exc).__name__}: {exc}",
                       "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


__all__ = [
    "DEFAULT_RULER_LENGTHS", "LONGBENCH_TASK_CLASSES", "RULER_TASK_CLASSES", "RUN_SETTINGS", "TASKS",
    "BuiltExamples", "ListRecordsTask", "LongBenchTask", "NeedleProseTask", "NeedleTask", "RulerTask", "ScbenchKvTask", "Task", "TaskBuildError", "TaskFailure",
    "TaskFailureWarning", "build_examples", "build_task_examples", "expand_tasks", "get_task", "longbench_task",
    "resolve_tasks", "task_names",
]
