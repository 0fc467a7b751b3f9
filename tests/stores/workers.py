"""Worker functions run in separate OS processes by the concurrency tests.

They live in an importable module so that ``multiprocessing``'s spawn start
method can find them; each process opens its own CRM through the public API.
"""

from __future__ import annotations

import sys
from uuid import UUID

import crmkit


def edit_counter(url: str, org_id: str, attempts: int) -> tuple[int, int, list[str]]:
    """Read-modify-write ``notes`` as a counter ``attempts`` times.

    Returns:
        (acknowledged commits, ConcurrencyErrors, any other error's repr).
    """
    ok = conflicts = 0
    other: list[str] = []
    with crmkit.open(url, seed_masters=False) as crm:
        oid = crmkit.OrganizationId(UUID(org_id))
        for _ in range(attempts):
            org = crm.organizations.get(oid)
            count = int(org.notes or "0")
            try:
                crm.organizations.update(oid, expected_version=org.version, notes=str(count + 1))
                ok += 1
            except crmkit.ConcurrencyError:
                conflicts += 1
            except Exception as error:
                other.append(repr(error))
    return ok, conflicts, other


def create_same_ref(url: str, attempts: int) -> tuple[int, int, list[str]]:
    """Try to create the organization with external_ref ``erp-1`` ``attempts`` times.

    Returns:
        (creations, DuplicateErrors, any other error's repr).
    """
    created = duplicates = 0
    other: list[str] = []
    with crmkit.open(url, seed_masters=False) as crm:
        for i in range(attempts):
            try:
                crm.organizations.create(name=f"Acme {i}", external_ref="erp-1")
                created += 1
            except crmkit.DuplicateError:
                duplicates += 1
            except Exception as error:
                other.append(repr(error))
    return created, duplicates, other


def bulk_forever(path: str, rows: int) -> None:
    """Bulk-create ``rows`` organizations in batches of 1000 (killed midway by the test)."""
    with crmkit.open(path, seed_masters=False) as crm:
        crm.organizations.bulk_create(
            [{"name": f"Org {i}", "tax_id": f"B{i:08d}"} for i in range(rows)], batch_size=1000
        )


if __name__ == "__main__":  # python -m tests.stores.workers bulk PATH ROWS
    bulk_forever(sys.argv[2], int(sys.argv[3]))
