"""The types of scoped CRMs, bulk updates and elevation, as a type checker sees them."""

from __future__ import annotations

from typing import assert_type
from uuid import UUID

import crmkit
from crmkit import BulkRefusal, BulkUpdateReport, Organization, Principal, ScopedCRM


def test_scope_bulk_update_and_elevation_types(crm: crmkit.CRM) -> None:
    """as_user gives a ScopedCRM; bulk_update a BulkUpdateReport; elevated the CRM."""
    ada = crm.users.create(name="Ada", role="admin")
    acme = crm.organizations.create(name="Acme", owner=ada.id)
    scoped = crm.as_user(ada, policy=crmkit.Policy())

    report = scoped.organizations.bulk_update([(acme.id, {"website": "acme.es"})])
    with scoped.elevated(reason="typing test") as system:
        found = system.organizations.get(acme.id)

    assert_type(scoped, ScopedCRM)
    assert_type(scoped.principal, Principal)
    assert_type(report, BulkUpdateReport)
    assert_type(report.updated, tuple[UUID, ...])
    assert_type(report.refused, tuple[BulkRefusal, ...])
    assert_type(system, crmkit.CRM)
    assert_type(found, Organization)
    assert report.updated == (acme.id,)
