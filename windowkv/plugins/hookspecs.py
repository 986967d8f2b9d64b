"""windowkv's hook specifications: one ``windowkv_register_*`` hook per component kind.

A plugin is a module (or object) with functions marked ``@windowkv.hookimpl`` and named like the hooks
below, declared in the entry point group ``windowkv`` of its distribution::

    [project.entry-points.windowkv]
    my_plugin = "my_package.windowkv_plugin"

Every hook is collected from every plugin (no first-result-wins); hooks only ever gain arguments, and
an implementation may accept fewer arguments than its spec.
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
def windowkv_register_budgets():
    """Return a list of :class:`windowkv.budgets.BudgetAllocator` subclasses."""


# ---------------------------------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------------------------------


@hookspec
def windowkv_register_policies():
    """Return a list of :class:`windowkv.policies.Preset`: named policy configurations."""
