"""Plugin discovery: a pluggy manager fed from the ``windowkv`` entry point group, one plugin at a time.

A plugin that fails to import, whose hook declares an argument the spec does not have, whose hook
raises, or that returns an invalid name or an object of the wrong kind is reported (a
:class:`PluginLoadWarning` naming its distribution) and skipped; the others still load. Each hook
implementation is called with the arguments it declares (pluggy's rule), so hooks can gain arguments. Set ``WINDOWKV_DISABLE_PLUGIN_AUTOLOAD=1`` to
load only windowkv's own built-ins.
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

import pluggy

from windowkv.errors import PluginLoadWarning
from windowkv.plugins import hookspecs
from windowkv.registry import KINDS, Registries

ENTRY_POINT_GROUP = "windowkv"
DISABLE_AUTOLOAD_ENV = "WINDOWKV_DISABLE_PLUGIN_AUTOLOAD"
BUILTINS_PLUGIN = "windowkv.plugins.builtins"

#: hook name for each kind
HOOKS = {
    "scorer": "windowkv_register_scorers",
    "classifier": "windowkv_register_classifiers",
    "selector": "windowkv_register_selectors",
    "sharing": "windowkv_register_sharing",
    "allocator": "windowkv_register_allocators",
    "merger": "windowkv_register_mergers",
    "quantizer": "windowkv_register_quantizers",
    "channel_pruner": "windowkv_register_channel_pruners",
    "method": "windowkv_register_methods",
    "policy": "windowkv_register_policies",
    "task": "windowkv_register_tasks",
    "metric": "windowkv_register_metrics",
}

#: the arguments every ``windowkv_register_*`` hook is called with (hooks only ever gain arguments; an
#: implementation receives the ones it declares)
HOOK_ARGUMENTS: dict[str, object] = {}


def _is_builtin(ep: EntryPoint) -> bool:
    return ep.value.split(":")[0] == BUILTINS_PLUGIN


@dataclass
class PluginSet:
    """A plugin manager, the distribution of each plugin it loaded, and the plugins that failed."""

    pm: pluggy.PluginManager
    distributions: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def get_plugin_manager(autoload: bool | None = None) -> PluginSet:
    """A fresh plugin manager with the built-ins and (unless disabled) every installed plugin.

    Failures are collected in ``PluginSet.errors`` and emitted as :class:`PluginLoadWarning`.
    """
    if autoload is None:
        autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "") in ("", "0", "false", "False")
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    plugins = PluginSet(pm)
    eps = list(entry_points(group=ENTRY_POINT_GROUP))
    if not any(_is_builtin(ep) for ep in eps):
        # running from a source tree that was never pip-installed: register the built-ins directly
        pm.register(importlib.import_module(BUILTINS_PLUGIN), name="builtins")
        plugins.distributions["builtins"] = ("windowkv", _own_version())
    for ep in sorted(eps, key=lambda e: (not _is_builtin(e), e.name)):
        if not autoload and not _is_builtin(ep):
            continue
        dist = ep.dist.name if ep.dist else "?"
        try:
            plugin = ep.load()
            if pm.is_registered(plugin):
                continue
            pm.register(plugin, name=ep.name)
            plugins.distributions[ep.name] = (dist, ep.dist.version if ep.dist else None)
        except Exception as exc:  # a broken third-party plugin must not take the others down
            msg = f"windowkv plugin {ep.name!r} from distribution {dist!r} failed to load: {type(exc).__name__}: {exc}"
            plugins.errors.append(msg)
            warnings.warn(msg, PluginLoadWarning, stacklevel=2)
    return plugins


def build_registries(plugins: PluginSet | None = None) -> Registries:
    """Call every plugin's ``windowkv_register_*`` hooks and fill one registry per kind.

    Each implementation gets the hook arguments it declares. Two components of one kind with one name
    raise :class:`ComponentConflictError` naming both providers. Every other fault of one plugin (its
    hook raises, returns a non-list, an invalid name or an object of the wrong kind) is a
    :class:`PluginLoadWarning` naming the distribution; the plugin's other objects still load.
    """
    plugins = plugins or get_plugin_manager()
    registries = Registries(load_errors=list(plugins.errors))

    def report(msg: str) -> None:
        registries.load_errors.append(msg)
        warnings.warn(msg, PluginLoadWarning, stacklevel=3)

    for kind in KINDS:
        hook = getattr(plugins.pm.hook, HOOKS[kind])
        for impl in hook.get_hookimpls():
            plugin_name = impl.plugin_name
            dist, version = plugins.distributions.get(plugin_name, (None, None))
            who = f"windowkv plugin {plugin_name!r} ({dist or '?'})"
            try:
                objects = impl.function(**{arg: HOOK_ARGUMENTS[arg] for arg in impl.argnames})
                objects = list(objects or [])
            except Exception as exc:
                report(f"{who} failed in {HOOKS[kind]}: {type(exc).__name__}: {exc}")
                continue
            for obj in objects:
                problem = _kind_problem(kind, obj)
                if problem is None:
                    try:
                        registries[kind].add(obj.name, obj, plugin_name, dist, version)
                        continue
                    except ValueError as exc:  # an invalid name
                        problem = str(exc)
                report(f"{who} returned a bad {kind} from {HOOKS[kind]}: {problem}")
    return registries


def _kind_problem(kind: str, obj: object) -> str | None:
    """Why ``obj`` cannot be registered as a ``kind``, or ``None``."""
    from windowkv.component import Component
    from windowkv.policies.presets import Preset
    from windowkv.policies.protocol import is_method_class

    if kind == "policy":
        ok, expected = isinstance(obj, Preset), "a windowkv.policies.Preset"
    elif kind == "method":
        ok, expected = is_method_class(obj), "a class satisfying windowkv.policies.LayerPolicy with a name"
    else:
        ok = isinstance(obj, type) and issubclass(obj, Component) and obj.kind == kind
        expected = f"a Component subclass of kind {kind!r}"
    return None if ok else f"{obj!r} is not {expected}"


def _own_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("windowkv")
    except Exception:
        return None


@functools.lru_cache(maxsize=1)
def default_registries() -> Registries:
    """The registries of the installed plugins, built on first use and then cached."""
    return build_registries()
