"""The base of every pluggable component: a frozen, strictly validated pydantic model.

A component's constructor arguments *are* its configuration: ``WindowMaxSelector(window_size=8)`` and
``{"type": "window_max", "window_size": 8}`` describe the same object, and ``to_config()`` gives the
latter back. Components are stateless; the state of one compression lives in
:class:`windowkv.run.CompressionRun`.
"""

from __future__ import annotations

import re
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from windowkv.errors import ConfigError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class Component(BaseModel):
    """Base class of scorers, classifiers, selectors, sharing strategies and budget allocators.

    Subclasses set ``name`` (the registry name, ``^[a-z][a-z0-9_]*$``) and declare their parameters
    as pydantic fields with defaults, constraints and a description each.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    kind: ClassVar[str] = "component"
    name: ClassVar[str] = ""

    def to_config(self) -> dict[str, Any]:
        """The complete description of this component: ``{"type": name, **params}``."""
        return {"type": self.name, **self.model_dump(mode="json")}

    @classmethod
    def from_params(cls, params: dict[str, Any], loc: str = "") -> Component:
        """Build from a parameter dict; a :class:`ConfigError` names each bad field under ``loc``."""
        try:
            return cls.model_validate(params)
        except ValidationError as exc:
            raise ConfigError(pydantic_errors(exc, loc, allowed=allowed_fields(cls))) from None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.model_dump().items())
        return f"{type(self).__name__}({args})"


def join_loc(*parts: Any) -> str:
    """Join field-path parts into ``a.b.c``; integers become ``[i]``."""
    out = ""
    for part in parts:
        if part in ("", None):
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


#: pydantic error type whose context carries ``(relative field path, message)`` pairs: raised by
#: validators that validate nested objects themselves (pydantic keeps no nested location for those)
NESTED_ERRORS = "windowkv_errors"


def nested_errors(pairs: list[tuple[str, str]]) -> PydanticCustomError:
    """A pydantic error carrying ``(relative path, message)`` pairs, expanded by :func:`pydantic_errors`."""
    return PydanticCustomError(NESTED_ERRORS, "{summary}", {"summary": "; ".join(m for _, m in pairs),
                                                             "errors": list(pairs)})


def pydantic_errors(
    exc: ValidationError, loc: str = "", allowed: str | Callable[[tuple], str | None] | None = None
) -> list[tuple[str, str]]:
    """Turn a pydantic error into ``(field path, message)`` pairs, paths prefixed with ``loc``.

    ``allowed`` (the accepted field names, or a function of the error's location giving them) is added
    to "unknown field" messages.
    """
    pairs = []
    for err in exc.errors():
        if err["type"] == NESTED_ERRORS:
            pairs += [(join_loc(loc, *err["loc"], sub), msg) for sub, msg in err["ctx"]["errors"]]
            continue
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            names = allowed(err["loc"]) if callable(allowed) else allowed
            msg = "unknown field" + (f"; allowed fields: {names}" if names else "")
        elif "input" in err and err["type"] not in ("missing",):
            msg = f"{msg} (got {err['input']!r})"
        pairs.append((join_loc(loc, *err["loc"]), msg))
    return pairs


def allowed_fields(cls: type[Component]) -> str:
    """A comma-separated list of a component's field names, for error messages."""
    return ", ".join(cls.model_fields) or "(no parameters)"
