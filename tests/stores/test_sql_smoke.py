"""The facade behaves the same on every backend (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import crmkit
from crmkit import Contains, Has


def test_create_update_find_and_history_on_every_backend(any_crm: crmkit.CRM) -> None:
    """A short end-to-end story gives the same results on each backend."""
    crm = any_crm
    acme = crm.organizations.create(
        name="Acme S.A.",
        emails=["ventas@acme.es"],
        phones=["911 234 567"],
        source="referral",
        tags=["vip"],
        kinds=["customer"],
    )
    ana = crm.contacts.create(
        first_name="Ana",
        last_name="Pérez",
        email="ana@acme.es",
        organization=acme,
        position="purchasing",
    )
    assert acme == crm.organizations.get(acme.id)
    assert ana == crm.contacts.get(ana.id)
    updated = crm.organizations.update(acme.id, expected_version=1, website="acme.es")
    assert 2 == updated.version
    assert [acme.id] == [o.id for o in crm.organizations.find(Has("tags", "vip"))]
    assert 1 == crm.organizations.count(Contains("name", "acme s.a"))
    assert ["create", "update"] == [e.action.value for e in crm.history(acme.id)]
