"""pluggy hook specifications, plugin discovery and windowkv's built-in plugin."""

from windowkv.plugins.hookspecs import hookimpl, hookspec
from windowkv.plugins.manager import (
    DISABLE_AUTOLOAD_ENV,
    ENTRY_POINT_GROUP,
    PluginSet,
    build_registries,
    default_registries,
    get_plugin_manager,
)

__all__ = [
    "hookimpl",
    "hookspec",
    "get_plugin_manager",
    "PluginSet",
    "build_registries",
    "default_registries",
    "ENTRY_POINT_GROUP",
    "DISABLE_AUTOLOAD_ENV",
]
