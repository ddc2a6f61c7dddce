"""Plugins from outside vhpclib: modules that register workloads, tables or artifacts when imported.

Named in ``VHPC_PLUGINS`` (comma-separated module names, importable from ``sys.path``) or
declared as an entry point of the group ``vhpc.plugins`` by an installed package (papermill
finds its engines the same way). They are imported once, after the built-in workloads,
so every process that runs vhpc sees them: the CLI, the stage loop, and the notebook kernels
``vhpc figures`` starts (which inherit the environment).
"""

from __future__ import annotations

import importlib
import os

from .exceptions import InputError

ENV = "VHPC_PLUGINS"
GROUP = "vhpc.plugins"
_loaded: set[str] = set()


def plugin_names() -> list[str]:
    """The plugin modules asked for: ``VHPC_PLUGINS``, then the ``vhpc.plugins`` entry points."""
    from importlib.metadata import entry_points

    names = [n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()]
    return names + [ep.value for ep in entry_points(group=GROUP)]


def load_plugins() -> list[str]:
    """Import every plugin module not imported yet; an unimportable one is one ``InputError`` naming it."""
    loaded = []
    for name in plugin_names():
        if name in _loaded:
            continue
        _loaded.add(name)
        try:
            importlib.import_module(name)
        except ImportError as exc:
            _loaded.discard(name)
            raise InputError(f"plugin {name!r} cannot be imported: {exc}", key=ENV) from None
        loaded.append(name)
    return loaded
