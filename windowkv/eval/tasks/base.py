"""The contract of an evaluation task: a registered component that builds :class:`~windowkv.eval.Example` lists.

A task is a frozen pydantic model like every windowkv component: its **own options are its fields**
(``NeedleTask(answer_prefix=False)``, or ``{type: needle, answer_prefix: false}``), validated with the
field's path in errors. The **run's settings** are explicit keyword arguments of :meth:`Task.examples`; a
task declares only those it uses (pluggy's rule: :meth:`Task.build` passes each task the arguments its
``examples`` names)::

    class CapitalsTask(Task):
        name: ClassVar[str] = "capitals"
        description: ClassVar[str] = "name the capital of a country"
        needs_tokenizer: ClassVar[bool] = False
        max_new_tokens: int = Field(8, ge=1, description="tokens to generate")

        def examples(self, *, num_examples: int, seed: int) -> list[Example]:
            ...

Run settings a task may declare: ``tokenizer`` (the model's), ``lengths`` (prompt lengths in tokens, or
``None`` for the task's default), ``depths`` (needle depths in ``[0, 1]`` or ``None``), ``num_examples``
(per grid cell), ``seed``, ``data_path`` (a file or directory of data), ``max_length`` (truncate prompts
above it), ``limit`` (at most this many examples; :meth:`build` also cuts the list).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar, Sequence

from windowkv.component import Component, allowed_fields, pydantic_errors
from windowkv.errors import ConfigError, WindowKVError
from windowkv.eval.examples import Example

#: the run settings :meth:`Task.build` can pass to :meth:`Task.examples`
RUN_SETTINGS = ("tokenizer", "lengths", "depths", "num_examples", "seed", "data_path", "max_length", "limit")


class TaskBuildError(WindowKVError):
    """A task produced something other than a list of unique examples (a bug in the task, not the input)."""


class Task(Component):
    """Base class of evaluation tasks (needle, RULER, LongBench, plugins).

    Subclasses set ``name`` (``family/name`` allowed, e.g. ``ruler/vt``), ``description``, optionally
    ``needs_tokenizer`` (default True: lengths are counted in the model's tokens), declare their options
    as pydantic fields, and implement :meth:`examples`.
    """

    kind: ClassVar[str] = "task"
    description: ClassVar[str] = ""
    needs_tokenizer: ClassVar[bool] = True

    def examples(self, **settings: Any) -> list[Example]:
        """The task's examples; declare the run settings you use as keyword-only arguments."""
        raise NotImplementedError(f"{type(self).__name__} must implement examples()")

    def build(self, *, tokenizer: Any = None, lengths: Sequence[int] | None = None,
              depths: Sequence[float] | None = None, num_examples: int = 1, seed: int = 0,
              data_path: str | Path | None = None, max_length: int | None = None,
              limit: int | None = None) -> list[Example]:
        """Check the run settings, call :meth:`examples` with those it declares, apply ``limit``.

        Raises:
            ConfigError: (a ``ValueError``) a setting out of range, or no tokenizer for a task that counts tokens.
            TaskBuildError: the task returned something else than unique :class:`Example` objects.
        """
        if self.needs_tokenizer and tokenizer is None:
            raise ConfigError([("tokenizer", f"task {self.name!r} needs the model's tokenizer (lengths are counted "
                                             "in its tokens)")])
        if limit is not None and limit < 0:
            raise ConfigError([("limit", f"limit must be >= 0 (got {limit})")])
        if num_examples < 1:
            raise ConfigError([("num_examples", f"num_examples must be >= 1 (got {num_examples})")])
        given = dict(tokenizer=tokenizer, lengths=None if lengths is None else list(lengths),
                     depths=None if depths is None else list(depths), num_examples=num_examples, seed=seed,
                     data_path=data_path, max_length=max_length, limit=limit)
        examples = self.examples(**{k: given[k] for k in self.declared_settings()})
        if not isinstance(examples, list) or not all(isinstance(e, Example) for e in examples):
            raise TaskBuildError(f"task {self.name!r} must return a list of windowkv.eval.Example "
                                 f"(got {type(examples).__name__})")
        examples = examples[:limit] if limit is not None else examples
        ids = [e.id for e in examples]
        if len(set(ids)) != len(ids):
            raise TaskBuildError(f"task {self.name!r} produced duplicate example ids")
        return examples

    @classmethod
    def declared_settings(cls) -> list[str]:
        """The run settings :meth:`examples` declares (all of them if it takes ``**settings``)."""
        params = inspect.signature(cls.examples).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()) and cls.examples is Task.examples:
            return []
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return list(RUN_SETTINGS)
        unknown = [n for n in params if n != "self" and n not in RUN_SETTINGS]
        if unknown:
            raise TypeError(f"task {cls.name!r}: examples() declares {', '.join(unknown)}; run settings are "
                            f"{', '.join(RUN_SETTINGS)} (task options are fields)")
        return [n for n in params if n in RUN_SETTINGS]

    def with_options(self, **options: Any) -> Task:
        """A copy with other option values, validated; errors name ``task.<name>.<field>``."""
        try:
            return type(self).model_validate({**self.model_dump(), **options})
        except Exception as exc:
            from pydantic import ValidationError

            if not isinstance(exc, ValidationError):
                raise
            raise ConfigError(pydantic_errors(exc, f"task.{self.name}", allowed=allowed_fields(type(self)))) from None

    def __call__(self, *, tokenizer: Any = None, lengths: Sequence[int] | None = None,
                 depths: Sequence[float] | None = None, num_examples: int = 1, limit: int | None = None,
                 seed: int = 0, data_path: Any = None, max_length: int | None = None, **options: Any) -> list[Example]:
        """``with_options(**options).build(...)``: one call for options and run settings (the older API)."""
        task = self.with_options(**options) if options else self
        return task.build(tokenizer=tokenizer, lengths=lengths, depths=depths, num_examples=num_examples,
                          seed=seed, data_path=data_path, max_length=max_length, limit=limit)
