"""crmkit's plugin system: pluggy markers for the project name ``crmkit``.

Write a plugin as a module or object with functions named after the hooks in
:mod:`crmkit.plugins.hookspecs`, each decorated with :data:`hookimpl`::

    from crmkit import hookimpl

    @hookimpl
    def crmkit_organization_created(crm, organization):
        print("new customer", organization.name)

.. versionadded:: 0.1
"""

from __future__ import annotations

import pluggy

__all__ = ["PROJECT", "hookimpl", "hookspec"]

#: The pluggy project name and the entry-point group third-party plugins use.
PROJECT = "crmkit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
