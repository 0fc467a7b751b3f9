"""The ERP bridge's data: what a host's customer becomes in the CRM.

A plugin's ``crmkit_organization_from_customer`` hook maps a host customer
object (a Django model instance, an ERP record...) to an
:class:`OrganizationDraft`; ``crm.sync_customer(obj)`` then creates the
organization and its contacts, or updates them, matched by ``external_ref``.
Drafts are plain values: they say what the records should hold, never how to
write them.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from attrs import field, frozen

from crmkit.core.contact_points import normalize_text
from crmkit.core.entities import Contact, Organization
from crmkit.core.errors import ValidationError

__all__ = ["ContactDraft", "OrganizationDraft", "SyncResult"]


def _external_ref(value: object) -> str:
    checked = normalize_text(value, "external_ref", required=True, max_length=200)
    assert checked is not None  # required
    return checked


def _fields(value: object) -> Mapping[str, Any]:
    """A read-only copy of a mapping of argument names to values."""
    if not isinstance(value, Mapping):
        raise ValidationError(
            "fields", "must map argument names to values", code="type", value=value
        )
    for name in value:
        if not isinstance(name, str) or not name:
            raise ValidationError("fields", "names must be text", code="type", value=name)
        if name == "external_ref":
            raise ValidationError(
                "fields.external_ref",
                "is the draft's own external_ref, not one of its fields",
                code="conflict",
                value=value[name],
            )
    return MappingProxyType(dict(value))


def _contacts(value: object) -> tuple[ContactDraft, ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError(
            "contacts", "must be a list of ContactDraft", code="type", value=value
        )
    items = tuple(value)
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, ContactDraft):
            raise ValidationError(
                f"contacts[{i}]", "must be a ContactDraft", code="type", value=item
            )
        if item.external_ref in seen:
            raise ValidationError(
                f"contacts[{i}].external_ref",
                "is given twice in the same draft",
                code="conflict",
                value=item.external_ref,
            )
        seen.add(item.external_ref)
    return items


@frozen
class ContactDraft:
    """A contact a host customer should have.

    Attributes:
        external_ref: the host's key for the person; it matches the contact on
            later syncs.
        fields: arguments of :meth:`crm.contacts.create
            <crmkit.app.ContactService.create>` (``first_name``, ``email``,
            ``phones``...), except ``external_ref`` and ``organization``, which
            the sync sets.

    Raises:
        ValidationError: an empty ``external_ref``, ``fields`` that is not a
            mapping or names ``external_ref``.

    .. versionadded:: 0.1
    """

    external_ref: str = field(converter=_external_ref)
    fields: Mapping[str, Any] = field(factory=dict, converter=_fields, hash=False)


@frozen
class OrganizationDraft:
    """What a host customer is as a CRM organization, with its contacts.

    Attributes:
        external_ref: the host's key for the customer (its customer number);
            it matches the organization on later syncs.
        fields: arguments of :meth:`crm.organizations.create
            <crmkit.app.OrganizationService.create>` (``name``, ``tax_id``,
            ``emails``, ``market``...) except ``external_ref``.  On a later
            sync only these fields are compared and updated: leave out what
            the CRM owns (the ``lifecycle`` a won opportunity advances, say).
        contacts: the customer's people, each matched by its own
            ``external_ref``.  Contacts of the organization that the draft
            does not list are left as they are.

    Raises:
        ValidationError: an empty ``external_ref``; ``fields`` that is not a
            mapping or names ``external_ref``; a contact that is not a
            :class:`ContactDraft`, or two with the same ``external_ref``.

    .. versionadded:: 0.1
    """

    external_ref: str = field(converter=_external_ref)
    fields: Mapping[str, Any] = field(factory=dict, converter=_fields, hash=False)
    contacts: tuple[ContactDraft, ...] = field(default=(), converter=_contacts)


@frozen
class SyncResult:
    """What ``crm.sync_customer(obj)`` did.

    Attributes:
        organization: the organization as it is now.
        contacts: the draft's contacts as they are now, in the draft's order.
        created: ``True`` when this call created the organization.
        changed: ``True`` when this call wrote anything (a creation or an
            update of the organization or of a contact); ``False`` when every
            record already held the draft's values.

    .. versionadded:: 0.1
    """

    organization: Organization
    contacts: tuple[Contact, ...]
    created: bool
    changed: bool
