"""One pydantic model for a policy configuration: :class:`PolicyConfig`.

A component field accepts ``{type: NAME, ...params}`` (or a bare ``NAME``, or an instance) and resolves
``NAME`` through the registry of its kind, plugins included, so a plugin component validates exactly
like a built-in. The registry comes from the validation context (``context={"registries": ...}``), else
:func:`windowkv.plugins.default_registries`. ``{preset: NAME, ...}`` starts from a registered preset
(presets may extend presets); every field a config leaves out takes the ``windowkv`` preset's value, the
one place the paper's defaults live. ``model_json_schema()`` describes the file format; the component
fields are ``oneOf`` the registered components, discriminated by ``type``.
"""

from __future__ import annotations

import copy
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Annotated, Any, Callable, Mapping, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from windowkv.allocators import BudgetAllocator
from windowkv.budget import Budget
from windowkv.channel_pruners import ChannelPruner
from windowkv.classifiers import TaskClassifier
from windowkv.component import NAME_PATTERN, Component, allowed_fields, pydantic_errors
from windowkv.component import nested_errors as errors
from windowkv.errors import ConfigError, UnknownComponentError
from windowkv.mergers import Merger
from windowkv.policies.decode import DecodeCompression, budget_error
from windowkv.policies.presets import merge_config, paper_defaults, resolve_preset
from windowkv.quantizers import Quantizer
from windowkv.scorers import Scorer
from windowkv.selectors import Selector
from windowkv.sharing import IndexSharing

if TYPE_CHECKING:
    from windowkv.registry import Registries

#: registries used while generating a JSON schema (which has no validation context)
_SCHEMA_REGISTRIES: "ContextVar[Registries | None]" = ContextVar("windowkv_schema_registries", default=None)

def registries_of(info: ValidationInfo | None) -> Registries:
    context = getattr(info, "context", None)
    found = context.get("registries") if isinstance(context, Mapping) else None
    if found is None:
        found = _SCHEMA_REGISTRIES.get()
    if found is None:
        from windowkv.plugins import default_registries

        found = default_registries()
    return found


def plural(kind: str) -> str:
    return "sharing strategies" if kind == "sharing" else f"{kind}s"


@dataclass(frozen=True)
class ComponentOf:
    """``Annotated[Base, ComponentOf(kind, Base)]``: a component field resolved through the registry."""

    kind: str
    base: type[Component]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            self.validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda c: c.to_config(), return_schema=core_schema.dict_schema()),
        )

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        registry = registries_of(None)[self.kind]
        members = []
        for entry in registry.entries():
            member = entry.obj.model_json_schema()
            member.pop("$defs", None)
            props = {"type": {"const": entry.name, "type": "string"}, **member.get("properties", {})}
            members.append({**member, "title": entry.obj.__name__, "properties": props,
                            "required": ["type", *member.get("required", [])]})
        return {"oneOf": members, "discriminator": {"propertyName": "type"},
                "description": f"{{type: NAME, ...params}}; NAME: a registered {self.kind}"}

    def validate(self, value: Any, info: ValidationInfo) -> Component:
        if isinstance(value, self.base):
            return value
        if isinstance(value, Component):
            raise errors([("", f"expected a {self.base.__name__}, got {type(value).__name__}")])
        registry = registries_of(info)[self.kind]
        if isinstance(value, str):
            value = {"type": value}
        if not isinstance(value, Mapping) or "type" not in value:
            raise errors([("", f"expected {{type: NAME, ...params}}; registered {plural(self.kind)}: "
                           f"{', '.join(registry.names())}")])
        params = dict(value)
        name = params.pop("type")
        try:
            cls = registry.get(name)
        except UnknownComponentError as exc:
            raise errors([("type", str(exc))]) from None
        try:
            return cls.model_validate(params)
        except ValidationError as exc:
            raise errors(pydantic_errors(exc, allowed=allowed_fields(cls))) from None


def component(kind: str, base: type[Component]) -> Any:
    return Annotated[base, ComponentOf(kind, base)]


def _parse_budget(value: Any) -> Budget:
    try:
        return Budget.of(value)
    except ValueError as exc:
        raise errors([("", str(exc))]) from None


BudgetField = Annotated[
    Budget,
    PlainValidator(_parse_budget),
    PlainSerializer(lambda b: b.to_config()),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1}, {"type": "number", "exclusiveMinimum": 0,
                                                                   "maximum": 1}, {"type": "string"}],
                    "description": "average review tokens kept per layer (int), a ratio in (0, 1] of each "
                                   "prompt's review tokens, a percentage string such as \"25%\", bytes of one "
                                   "prompt's compressed cache (\"1.5MiB\", \"65536B\") or a share of the full "
                                   "cache's bytes (\"12% bytes\")"}),
]
Label = Annotated[str, StringConstraints(pattern=NAME_PATTERN.pattern)]


def _default(key: str) -> Callable[[], Any]:
    return lambda: copy.deepcopy(paper_defaults()[key])


class Profile(BaseModel):
    """How prompts of one task label are compressed.

    Attributes:
        selector: picks the kept review tokens.
        suffix_size: ``s``, last prompt tokens always kept and whose queries score the rest.
        budget_scale: multiplies the policy's budget for prompts of this label (e.g. 0.5 gives
            summaries half the review tokens of the policy's budget); capped at the whole review.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    selector: component("selector", Selector) = Field(description="Picks the kept review tokens.")
    suffix_size: int = Field(32, ge=1, strict=True, description="s: last prompt tokens always kept; their "
                             "queries score the rest.")
    budget_scale: float = Field(1.0, gt=0, allow_inf_nan=False,
                                description="Multiplies the policy's budget for prompts of this label "
                                "(capped at the whole review).")

    def __init__(self, selector: Any = None, suffix_size: Any = None, /, **data: Any) -> None:
        if selector is not None:
            data["selector"] = selector
        if suffix_size is not None:
            data["suffix_size"] = suffix_size
        super().__init__(**data)

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]  # validation does not call it

    def to_config(self) -> dict[str, Any]:
        return _without_unit_scale(self.model_dump(mode="json"))


class PolicyConfig(BaseModel):
    """A policy configuration; :class:`windowkv.Policy` is this model plus the compression behaviour.

    Attributes:
        budget: average review tokens kept per layer (``int``) or fraction of each prompt's review
            tokens (``float`` in ``(0, 1]``); see :mod:`windowkv.budget`.
        scorer: per-token importance (default: suffix attention).
        classifier: prompt -> task label (default: the embedding classifier, MiniLM + the shipped head).
        allocator: per-layer budgets (default: arithmetic groups, G=8, beta=14).
        sharing: which layers reuse a leader's scores (default: groups of 8).
        profiles: task label -> :class:`Profile` (default: ``qa``: window max, s=32;
            ``other``: window average, s=16). Every label of the classifier needs a profile.
        merger: what happens to evicted tokens (default ``None``: they are dropped).
        quantizer: how kept slots are stored (default ``None``: in the model's dtype).
        channel_pruner: which key channels are kept (default ``None``: all).
        decode: compression while decoding (default ``None``: generated tokens are all kept); see
            :mod:`windowkv.policies.decode`.
        name: a name for tables and result files.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, arbitrary_types_allowed=True)

    name: str = Field("custom", description="A name for tables and result files.")
    budget: BudgetField
    scorer: component("scorer", Scorer) = Field(default_factory=_default("scorer"))
    classifier: component("classifier", TaskClassifier) = Field(default_factory=_default("classifier"))
    allocator: component("allocator", BudgetAllocator) = Field(default_factory=_default("allocator"))
    sharing: component("sharing", IndexSharing) = Field(default_factory=_default("sharing"))
    profiles: dict[Label, Profile] = Field(default_factory=_default("profiles"), min_length=1)
    merger: Optional[component("merger", Merger)] = None
    quantizer: Optional[component("quantizer", Quantizer)] = None
    channel_pruner: Optional[component("channel_pruner", ChannelPruner)] = None
    decode: Optional[DecodeCompression] = Field(None, description="Compression while decoding (R-KV budget + "
                                                "buffer, CORM); null: generated tokens are all kept.")

    @model_validator(mode="before")
    @classmethod
    def _resolve_preset(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            hint = ("; for a config file use windowkv.load_policy(path), for a preset Policy.from_preset(name)"
                    if isinstance(data, (str, PurePath)) else "")
            raise errors([("", f"a policy config is a mapping, got {type(data).__name__}{hint}")])
        return resolve_config(data, registries_of(info))

    @model_validator(mode="after")
    def _labels_have_profiles(self) -> PolicyConfig:
        missing = [label for label in self.classifier.labels() if label not in self.profiles]
        if missing:
            raise errors([("profiles", f"no profile for the classifier's labels {missing}; "
                           f"profiles: {sorted(self.profiles)}")])
        return self

    @model_validator(mode="after")
    def _decode_budget_fits(self) -> PolicyConfig:
        if self.decode is not None:
            reason = budget_error(self.decode, self.budget, self.max_suffix_size())
            if reason:
                raise errors([("decode.budget", reason)])
        return self

    def max_suffix_size(self) -> int:
        """The largest suffix over the profiles (tokens never evicted at the end of a prompt)."""
        return max(p.suffix_size for p in self.profiles.values())

    def decode_budgets(self, lengths: list[int]) -> list[int]:
        """Slots per layer and KV head each row keeps while decoding (rows of prompt ``lengths`` tokens);
        see :meth:`windowkv.policies.decode.DecodeCompression.row_budgets`."""
        if self.decode is None:
            raise ValueError("this policy does not compress while decoding (decode is null)")
        return self.decode.row_budgets(self.budget, self.max_suffix_size(), lengths)

    def to_config(self) -> dict[str, Any]:
        """The complete, normalised description (``model_dump``; unset optional stages left out)."""
        config = self.model_dump(mode="json")
        config["profiles"] = {label: _without_unit_scale(p) for label, p in config["profiles"].items()}
        for key in (*OPTIONAL_STAGES, "decode"):
            if config.get(key) is None:
                config.pop(key, None)
        return config


def _without_unit_scale(profile: dict[str, Any]) -> dict[str, Any]:
    """A dumped profile without ``budget_scale`` when it is 1 (so configs and fingerprints written before
    the field existed are unchanged)."""
    if profile.get("budget_scale") == 1.0:
        profile = {k: v for k, v in profile.items() if k != "budget_scale"}
    return profile


#: stages after selection; ``None`` (left out of ``to_config``) keeps today's behaviour
OPTIONAL_STAGES = ("merger", "quantizer", "channel_pruner")


def resolve_config(config: Mapping[str, Any], registries: Registries) -> dict[str, Any]:
    """Replace ``preset: NAME`` by the preset's (recursively resolved) configuration, overridden by the
    other keys; a budget-locked preset keeps its own budget."""
    cfg = dict(config)
    if "preset" not in cfg:
        return cfg
    name = cfg.pop("preset")
    try:
        base, locked = resolve_preset(name, registries)
    except (UnknownComponentError, ConfigError) as exc:
        raise errors([("preset", str(exc) if isinstance(exc, UnknownComponentError) else exc.errors[0][1])]) from None
    if locked:
        cfg.pop("budget", None)
    return merge_config({"name": name, **base}, cfg)


def config_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """``(field path, message)`` pairs of a policy config's validation error."""
    out = []
    for loc, message in pydantic_errors(exc, allowed=_allowed_at):
        if loc == "budget" and message == "Field required":
            message = "missing: give tokens (e.g. 256) or a ratio (e.g. 0.25)"
        out.append((loc, message))
    return out


def _allowed_at(loc: tuple) -> str | None:
    if len(loc) == 1:
        return ", ".join(["preset", *PolicyConfig.model_fields])
    if len(loc) == 3 and loc[0] == "profiles":
        return ", ".join(Profile.model_fields)
    return None


def build(config: Any, cls: type[PolicyConfig], registries: Registries | None = None,
          source: str | None = None) -> Any:
    """Validate ``config`` into ``cls`` (or the registered method it names); errors as :class:`ConfigError`."""
    context = {"registries": registries}
    if isinstance(config, Mapping) and ("method" in config or "preset" in config):
        try:
            resolved = resolve_config(config, registries_of(None) if registries is None else registries)
        except PydanticCustomError as exc:
            raise ConfigError(list(exc.context["errors"]), source) from None
        if "method" in resolved:
            return _build_method(resolved, registries, source)
    try:
        return cls.model_validate(config, context=context)
    except ValidationError as exc:
        raise ConfigError(config_errors(exc), source) from None


def _build_method(config: dict[str, Any], registries: Registries | None, source: str | None) -> Any:
    """``{method: {type: NAME, ...params}, ...}``: the registered method class built from its parameters
    and the config's other keys (``budget``, ``name``)."""
    from windowkv.plugins import default_registries

    registry = (registries or default_registries())["method"]
    spec = config.pop("method")
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ConfigError([("method", f"expected {{type: NAME, ...params}}; registered methods: "
                                      f"{', '.join(registry.names())}")], source)
    params = {**config, **{k: v for k, v in spec.items() if k != "type"}}
    try:
        cls = registry.get(spec["type"])
    except UnknownComponentError as exc:
        raise ConfigError([("method.type", str(exc))], source) from None
    try:
        if issubclass(cls, BaseModel):
            return cls.model_validate(params, context={"registries": registries})
        return cls(**params)
    except ValidationError as exc:
        raise ConfigError(pydantic_errors(exc, "method", allowed=allowed_fields(cls)), source) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError([("method", f"{type(exc).__name__}: {exc}")], source) from None


def policy_json_schema(registries: Registries | None = None) -> dict[str, Any]:
    """The JSON Schema of a policy config file, with the components of ``registries`` (default: installed)."""
    from windowkv.plugins import default_registries

    registries = registries or default_registries()
    token = _SCHEMA_REGISTRIES.set(registries)
    try:
        schema = PolicyConfig.model_json_schema()
    finally:
        _SCHEMA_REGISTRIES.reset(token)
    presets = {"type": "string", "enum": registries["policy"].names(),
               "description": "Start from this preset; the other keys override it."}
    schema["properties"] = {"preset": presets, **schema["properties"]}
    schema["required"] = []  # a preset may give the budget; ``budget`` is checked after resolution
    return schema
