"""windowkv's hook specifications: one ``windowkv_register_*`` hook per component kind.

A plugin is a module (or object) with functions marked ``@windowkv.hookimpl`` and named like the hooks
below, declared in the entry point group ``windowkv`` of its distribution::

    [project.entry-points.windowkv]
    my_plugin = "my_package.windowkv_plugin"

Every hook is collected from every plugin (no first-result-wins). Each implementation is called with the
arguments it declares (pluggy's rule): hooks only ever gain arguments, and an implementation may accept
fewer arguments than its spec, so old plugins keep working. A fault of one plugin (a hook that raises,
an invalid name, an object of the wrong kind, an argument the spec does not have) is a
``windowkv.PluginLoadWarning`` naming its distribution; the other plugins still load.
"""

from __future__ import annotations

import pluggy

PROJECT = "windowkv"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------------------------------
# Components
# ---------------------------------------------------------------------------------------------------


@hookspec
def windowkv_register_scorers():
    """Return a list of :class:`windowkv.scorers.Scorer` subclasses, each with a unique ``name``."""


@hookspec
def windowkv_register_classifiers():
    """Return a list of :class:`windowkv.classifiers.TaskClassifier` subclasses."""


@hookspec
def windowkv_register_selectors():
    """Return a list of :class:`windowkv.selectors.Selector` subclasses."""


@hookspec
def windowkv_register_sharing():
    """Return a list of :class:`windowkv.sharing.IndexSharing` subclasses."""


@hookspec
def windowkv_register_allocators():
    """Return a list of :class:`windowkv.allocators.BudgetAllocator` subclasses (per-layer budgets)."""


@hookspec
def windowkv_register_mergers():
    """Return a list of :class:`windowkv.mergers.Merger` subclasses (what happens to evicted tokens)."""


@hookspec
def windowkv_register_quantizers():
    """Return a list of :class:`windowkv.quantizers.Quantizer` subclasses (how kept slots are stored)."""


@hookspec
def windowkv_register_channel_pruners():
    """Return a list of :class:`windowkv.channel_pruners.ChannelPruner` subclasses (which key channels are kept)."""


# ---------------------------------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------------------------------


@hookspec
def windowkv_register_policies():
    """Return a list of :class:`windowkv.policies.Preset`: named policy configurations.

    A preset's configuration may start from another preset (``{"preset": "windowkv", ...}``).
    """


@hookspec
def windowkv_register_methods():
    """Return a list of whole-method classes: each satisfies :class:`windowkv.policies.LayerPolicy`, has a
    unique ``name`` and is built from ``{method: {type: NAME, ...params}}`` in a policy config."""


# ---------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------


@hookspec
def windowkv_register_tasks():
    """Return a list of :class:`windowkv.eval.tasks.Task` subclasses: evaluation tasks, each with a unique
    ``name`` (``family/name`` allowed, e.g. ``ruler/vt``; ``windowkv eval FAMILY`` runs a whole family).

    A task's options are its pydantic fields; :meth:`~windowkv.eval.tasks.Task.examples` declares the run
    settings it uses as keyword arguments and returns :class:`windowkv.eval.Example` objects.
    """


@hookspec
def windowkv_register_metrics():
    """Return a list of :class:`windowkv.eval.metrics.Metric` subclasses: scores of a prediction against
    gold answers in ``[0, 1]``, named by :attr:`windowkv.eval.Example.metric`."""
