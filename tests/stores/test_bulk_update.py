"""``update_many`` (the optional ``BulkUpdater`` of both stores) keeps ``update``'s checks."""

from __future__ import annotations

import attrs
import pytest

import crmkit
from crmkit import ConcurrencyError, NotFoundError, Organization, OrganizationId
from crmkit.core import changes
from crmkit.core.ids import uuid7


def _organizations(crm: crmkit.CRM, n: int) -> list[Organization]:
    return [crm.organizations.create(name=f"Org {i}") for i in range(n)]


def test_update_many_writes_every_record_at_once(any_crm: crmkit.CRM) -> None:
    orgs = _organizations(any_crm, 3)
    renamed = [
        changes.update(o, {"name": f"Renamed {i}"}, now=any_crm.now())[0]
        for i, o in enumerate(orgs)
    ]
    with any_crm.store.unit_of_work() as uow:
        uow.repository(Organization).update_many(  # type: ignore[attr-defined]
            renamed, expected_versions=[o.version for o in orgs]
        )
        uow.commit()
    assert [f"Renamed {i}" for i in range(3)] == [
        any_crm.organizations.get(o.id).name for o in orgs
    ]
    assert [2, 2, 2] == [any_crm.organizations.get(o.id).version for o in orgs]


def test_update_many_with_one_stale_version_is_a_concurrency_error(any_crm: crmkit.CRM) -> None:
    orgs = _organizations(any_crm, 3)
    renamed = [changes.update(o, {"name": "X"}, now=any_crm.now())[0] for o in orgs]
    versions = [o.version for o in orgs]
    versions[1] = 7
    with pytest.raises(ConcurrencyError) as caught, any_crm.store.unit_of_work() as uow:
        uow.repository(Organization).update_many(  # type: ignore[attr-defined]
            renamed, expected_versions=versions
        )
    assert (orgs[1].id, 7) == (caught.value.id, caught.value.expected_version)
    assert ["Org 0", "Org 1", "Org 2"] == [any_crm.organizations.get(o.id).name for o in orgs]


def test_update_many_of_a_missing_record_is_not_found(any_crm: crmkit.CRM) -> None:
    [org] = _organizations(any_crm, 1)
    ghost = attrs.evolve(org, id=OrganizationId(uuid7()), version=2)
    with pytest.raises(NotFoundError), any_crm.store.unit_of_work() as uow:
        uow.repository(Organization).update_many(  # type: ignore[attr-defined]
            [ghost], expected_versions=[1]
        )
