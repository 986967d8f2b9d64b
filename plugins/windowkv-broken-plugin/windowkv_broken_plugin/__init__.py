"""A windowkv plugin that fails on import, on purpose (see tests/test_plugins.py in windowkv).

windowkv must report it (a PluginLoadWarning naming this distribution, ``Registries.load_errors``) and
still load every other plugin.
"""

raise RuntimeError("windowkv-broken-plugin fails to import on purpose")
