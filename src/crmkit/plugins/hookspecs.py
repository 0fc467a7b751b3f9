"""The hooks crmkit calls.  Each one is documented in ``docs/plugin-hooks.md``.

Every hook receives ``crm`` and is called with keyword arguments; a plugin
implements only the arguments it needs (pluggy's opt-in arguments), so hooks
may gain arguments in later versions but never lose them.

Families:

* registration (``crmkit_register_*``) returns lists that crmkit collects;
* notifications (``crmkit_<noun>_<past participle>``) run after the commit,
  exactly once per change, and return ``None``.

.. versionadded:: 0.1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmkit.plugins import hookspec

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.core.entities import Contact, MasterSeed, Organization

# =================================================================== registration


@hookspec
def crmkit_register_masters(crm: CRM) -> list[MasterSeed]:  # type: ignore[empty-body]
    """Seed master lists (sources, markets, positions, zones).

    Called when a CRM is opened with ``seed_masters=True`` (the default).
    Entries missing from the store (by kind and key) are created; existing
    ones are never changed, so users may rename or archive them.

    Args:
        crm: the CRM being opened.

    Returns:
        A list of :class:`crmkit.MasterSeed`.

    .. versionadded:: 0.1
    """


# ================================================================== notifications


@hookspec
def crmkit_organization_created(crm: CRM, organization: Organization) -> None:
    """An organization was created and committed.

    Runs after the transaction commits, once per organization (bulk creation
    included).  An exception here does not undo the creation; the caller gets
    :class:`crmkit.HookError` with ``committed=True``.

    Args:
        crm: the CRM the organization was created in.
        organization: the new organization.

    .. versionadded:: 0.1
    """


@hookspec
def crmkit_contact_created(crm: CRM, contact: Contact) -> None:
    """A contact was created and committed.

    Same guarantees as :func:`crmkit_organization_created`.

    Args:
        crm: the CRM the contact was created in.
        contact: the new contact.

    .. versionadded:: 0.1
    """
