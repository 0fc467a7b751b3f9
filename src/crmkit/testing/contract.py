"""The store contract suite: the behaviour every crmkit backend must have.

Subclass :class:`StoreContract` in your backend's tests and override
:meth:`~StoreContract.make_store`; pytest then runs every contract test against
your store::

    # tests/test_my_store.py
    from crmkit.testing import StoreContract

    from my_backend import MyStore


    class TestMyStore(StoreContract):
        def make_store(self) -> MyStore:
            return MyStore("...a fresh, empty database...")

The tests use nothing but the :class:`~crmkit.stores.base.Store` protocol and
the pure change functions of :mod:`crmkit.core.changes`, and assume only what
the protocol's docstrings promise:

* a unit of work sees its own writes and rolls back unless committed;
  :meth:`~crmkit.stores.base.UnitOfWork.savepoint` rolls back alone;
* ``update`` checks ``expected_version`` (:class:`~crmkit.ConcurrencyError`,
  with ``expected_version`` and ``actual_version``);
* ``UNIQUE`` fields (``external_ref``, a master's ``key``) and ids are unique
  among all records, archived ones included (:class:`~crmkit.DuplicateError`
  naming the field); ``REFERENCES`` must exist (:class:`~crmkit.ValidationError`
  with code ``reference``);
* ``find`` and ``count`` select, order and page exactly as
  :func:`crmkit.core.query.select` (checked with Hypothesis);
* the audit trail is written in the unit of work and numbered by a sequence
  that only grows.

After a write fails, a test leaves that unit of work (on PostgreSQL a failed
statement aborts the transaction), unless the write ran inside a savepoint.

Requires ``pytest`` and ``hypothesis`` (the ``dev`` extra).

.. versionadded:: 0.1
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.core.audit import AuditAction, AuditChange, AuditEntry
from crmkit.core.changes import archive, create, update
from crmkit.core.contact_points import Address, AddressKind, EmailAddress, PhoneNumber
from crmkit.core.entities import (
    Channel,
    Contact,
    ContactRole,
    Entity,
    Lifecycle,
    Market,
    Organization,
    OrganizationKind,
    OrganizationStatus,
    Position,
    Role,
    Source,
    User,
    Zone,
)
from crmkit.core.errors import ConcurrencyError, DuplicateError, NotFoundError, ValidationError
from crmkit.core.ids import (
    MarketId,
    OrganizationId,
    UserId,
    uuid7,
)
from crmkit.core.query import Contains, Eq, Filter, Has, In, Order, Query, Range, select
from crmkit.stores.base import Store, UnitOfWork

__all__ = ["StoreContract"]

E = TypeVar("E", bound=Entity)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

# ---------------------------------------------------------------- test data
# Small pools, so that filters hit, sort keys tie and None values appear.
# The names exercise case folding (ß, Ñ, É), code-point order and LIKE escaping.

_NAMES = (
    "Acme",
    "acme",
    "ACME Norte",
    "Beta",
    "beta s.l.",
    "Ñandú",
    "ñandú",
    "Straße",
    "STRASSE",
    "École",
    "Zeta",
    "100% Bio",
    "a_b",
)
_CONTAINS = ("acme", "ACME", "ñ", "Ñ", "ss", "ß", "eta", "éco", "%", "_", "x", "0% b")
_TAGS = ("vip", "erp", "Norte", "norte")
_TAX_IDS = ("A1", "a1", "B2")
_OFFSETS = tuple(timezone(timedelta(hours=h)) for h in (-5, -3, 0, 1, 2, 9))
_TIMES = tuple(T0 + timedelta(hours=h) for h in range(-4, 5))


def _aware_times() -> st.SearchStrategy[datetime]:
    return st.builds(
        lambda t, tz: t.astimezone(tz), st.sampled_from(_TIMES), st.sampled_from(_OFFSETS)
    )


# Fixed ids: the records of one example are never committed, so examples cannot clash,
# and fixed values keep the strategies below built once instead of once per example.
_USER_IDS = (UserId(UUID(int=0xFFFF << 64)), UserId(UUID(int=1)))
_MARKET_IDS = (MarketId(UUID(int=2)), MarketId(UUID(int=0xFFFF << 100)))


def _users(ids: Sequence[UUID]) -> list[User]:
    return [
        User(id=UserId(u), created_at=T0, updated_at=T0, name=f"User {i}", role=Role.MANAGER)
        for i, u in enumerate(ids)
    ]


def _markets(ids: Sequence[UUID]) -> list[Market]:
    return [
        Market(id=MarketId(u), created_at=T0, updated_at=T0, key=f"market-{i}", name=f"M{i}")
        for i, u in enumerate(ids)
    ]


_owners: st.SearchStrategy[UUID | None] = st.none() | st.sampled_from(_USER_IDS)
_org_fields: dict[str, st.SearchStrategy[Any]] = {
    "version": st.integers(1, 3),
    "created_at": _aware_times(),
    "archived": st.booleans(),
    "name": st.sampled_from(_NAMES),
    "legal_name": st.none() | st.sampled_from(_NAMES),
    "status": st.sampled_from(OrganizationStatus),
    "lifecycle": st.sampled_from(Lifecycle),
    "kinds": st.frozensets(st.sampled_from(OrganizationKind), max_size=2),
    "tags": st.lists(st.sampled_from(_TAGS), max_size=2, unique=True).map(tuple),
    "tax_id": st.none() | st.sampled_from(_TAX_IDS),
    "owner_id": _owners,
    "market_id": st.none() | st.sampled_from(_MARKET_IDS),
}
_org_ids = st.lists(st.uuids(), max_size=12, unique=True)
_refs = st.lists(st.text("abc", min_size=1, max_size=3), max_size=12, unique=True)


@st.composite
def _book(draw: st.DrawFn) -> tuple[list[User], list[Market], list[Organization]]:
    """Users, markets and organizations that refer to them (and only to them)."""
    ids = draw(_org_ids)
    refs = draw(_refs)
    organizations = []
    for i, id in enumerate(ids):
        values = {name: draw(strategy) for name, strategy in _org_fields.items()}
        organizations.append(
            Organization(
                id=OrganizationId(id),
                updated_at=T0,
                external_ref=refs[i] if i < len(refs) else None,
                **values,
            )
        )
    return _users(_USER_IDS), _markets(_MARKET_IDS), organizations


_books = _book()


_filters: st.SearchStrategy[Filter] = st.one_of(
    st.builds(Eq, st.just("name"), st.sampled_from(_NAMES)),
    st.builds(Eq, st.just("legal_name"), st.none() | st.sampled_from(_NAMES)),
    st.builds(Eq, st.just("owner_id"), _owners),
    st.builds(Eq, st.just("archived"), st.booleans()),
    st.builds(Eq, st.just("status"), st.sampled_from(OrganizationStatus)),
    st.builds(Eq, st.just("lifecycle"), st.sampled_from([m.value for m in Lifecycle])),
    st.builds(Eq, st.just("tax_id"), st.sampled_from(_TAX_IDS)),
    st.builds(In, st.just("status"), st.lists(st.sampled_from(OrganizationStatus), max_size=2)),
    st.builds(In, st.just("owner_id"), st.lists(_owners, max_size=3)),
    st.builds(In, st.just("tax_id"), st.lists(st.sampled_from(_TAX_IDS), max_size=2)),
    st.builds(
        Range,
        st.just("created_at"),
        st.none() | _aware_times(),
        st.none() | _aware_times(),
        st.booleans(),
    ),
    st.builds(
        Range,
        st.just("name"),
        st.none() | st.sampled_from(_NAMES),
        st.none() | st.sampled_from(_NAMES),
        st.booleans(),
    ),
    st.builds(Range, st.just("version"), st.none() | st.integers(0, 4), st.none() | st.just(3)),
    st.builds(Contains, st.just("name"), st.sampled_from(_CONTAINS)),
    st.builds(Contains, st.just("legal_name"), st.sampled_from(_CONTAINS)),
    st.builds(Has, st.just("tags"), st.sampled_from(_TAGS)),
    st.builds(Has, st.just("kinds"), st.sampled_from(OrganizationKind)),
)


_ORDERS = ("name", "legal_name", "created_at", "status", "owner_id", "version", "tax_id", "id")


_queries: st.SearchStrategy[Query] = st.builds(
    Query,
    filters=st.lists(_filters, max_size=3),
    archived=st.sampled_from([False, True, None]),
    order=st.lists(st.builds(Order, st.sampled_from(_ORDERS), st.booleans()), max_size=3),
    limit=st.none() | st.integers(0, 14),
    offset=st.integers(0, 14),
)
_query_lists = st.lists(_queries, min_size=1, max_size=3)


# -------------------------------------------------- every entity type, full


_texts = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(
    lambda s: s == s.strip()
)
_optional_texts = st.none() | _texts
_emails = st.sampled_from(
    ["ana@acme.es", "Luis.Pérez@acme.es", "info@españa.es", "x+crm@example.com"]
).map(EmailAddress)
_phones = st.sampled_from(["+34911234567", "+34612345678", "+442079460000", "+16502530000"]).map(
    PhoneNumber
)
_addresses = st.builds(
    Address,
    street=_optional_texts,
    city=_optional_texts,
    postal_code=st.none() | st.sampled_from(["28013", "1000-001"]),
    country=st.none() | st.sampled_from(["ES", "PT", "MX"]),
    kind=st.sampled_from(AddressKind),
)
_urls = st.sampled_from(["https://acme.es", "http://example.com/a?b=c", "https://x.com/ana"])


def _system() -> dict[str, st.SearchStrategy[Any]]:
    return {
        "id": st.uuids(),
        "version": st.integers(1, 10**6),
        "created_at": _aware_times(),
        "updated_at": _aware_times(),
        "archived": st.booleans(),
    }


def _every_type() -> st.SearchStrategy[Entity]:
    """Entities of every type, optional fields filled or not, references left empty."""
    masters = [
        st.builds(
            cls,
            **_system(),
            key=st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", max_size=20).map("k{}".format),
            name=_texts,
            name_es=_optional_texts,
            description=_optional_texts,
        )
        for cls in (Source, Market, Position, Zone)
    ]
    users = st.builds(
        User, **_system(), name=_texts, email=st.none() | _emails, role=st.sampled_from(Role)
    )
    organizations = st.builds(
        Organization,
        **_system(),
        name=_texts,
        legal_name=_optional_texts,
        kinds=st.frozensets(st.sampled_from(OrganizationKind)),
        status=st.sampled_from(OrganizationStatus),
        lifecycle=st.sampled_from(Lifecycle),
        tax_id=st.none() | st.sampled_from(_TAX_IDS),
        addresses=st.lists(_addresses, max_size=2).map(tuple),
        phones=st.lists(_phones, max_size=2, unique=True).map(tuple),
        emails=st.lists(_emails, max_size=2, unique=True).map(tuple),
        website=st.none() | _urls,
        tags=st.lists(_texts, max_size=3).map(tuple),
        notes=_optional_texts,
    )
    contacts = st.builds(
        Contact,
        **_system(),
        first_name=_texts,
        last_name=_optional_texts,
        email=st.none() | _emails,
        phones=st.lists(_phones, max_size=2).map(tuple),
        department=_optional_texts,
        role=st.none() | st.sampled_from(ContactRole),
        preferred_channel=st.none() | st.sampled_from(Channel),
        do_not_contact=st.booleans(),
        language=st.none() | st.sampled_from(["es", "en-GB"]),
        social_profiles=st.lists(_urls, max_size=2).map(tuple),
        tags=st.lists(_texts, max_size=3).map(tuple),
        notes=_optional_texts,
    )
    return st.one_of(*masters, users, organizations, contacts)


def _org(name: str = "Acme", **values: Any) -> Organization:
    return create(Organization, id=uuid7(), now=T0, name=name, **values)[0]


def _contact(**values: Any) -> Contact:
    return create(Contact, id=uuid7(), now=T0, first_name="Ana", **values)[0]


def _source(key: str = "web", **values: Any) -> Source:
    return create(Source, id=uuid7(), now=T0, key=key, name=key.title(), **values)[0]


def _ids(entities: Sequence[Entity]) -> list[UUID]:
    return [e.id for e in entities]


class _Boom(Exception):
    """Raised by the tests to abandon a block."""


# ------------------------------------------------------------------ the suite


class StoreContract(abc.ABC):
    """The behaviour every store must have, as pytest tests.

    Subclass it in a test module (its name must start with ``Test``) and
    override :meth:`make_store`.  Class attributes tune the Hypothesis tests.
    """

    #: Hypothesis examples for "find and count agree with select".
    find_examples: ClassVar[int] = 100
    #: Hypothesis examples for "every entity type reads back equal".
    round_trip_examples: ClassVar[int] = 50

    @abc.abstractmethod
    def make_store(self) -> Store:
        """Return a new, empty store; each test calls it once and closes the store after.

        Every subclass defines it (the class is abstract until it does).
        """

    @pytest.fixture
    def contract_store(self) -> Iterator[Store]:
        """A fresh store from :meth:`make_store`, closed after the test."""
        store = self.make_store()
        try:
            yield store
        finally:
            store.close()

    # ------------------------------------------------------------- helpers
    @staticmethod
    def _commit(store: Store, *entities: Entity) -> None:
        with store.unit_of_work() as uow:
            for entity in entities:
                uow.repository(type(entity)).add(entity)
            uow.commit()

    @staticmethod
    def _stored(store: Store, cls: type[E], id: UUID) -> E | None:
        with store.unit_of_work(write=False) as uow:
            return uow.repository(cls).get_many([id]).get(id)

    # ------------------------------------------------------ add and read
    def test_added_record_reads_back_equal(self, contract_store: Store) -> None:
        """``get``, ``get_many``, ``get_by`` and ``find`` return what was added."""
        acme = _org(external_ref="ERP-1", tags=("vip",), emails=(EmailAddress("a@acme.es"),))
        self._commit(contract_store, acme)
        with contract_store.unit_of_work(write=False) as uow:
            repo = uow.repository(Organization)
            assert acme == repo.get(acme.id)
            assert {acme.id: acme} == repo.get_many([acme.id, uuid7()])
            assert acme == repo.get_by("external_ref", "ERP-1")
            assert repo.get_by("external_ref", "ERP-2") is None
            assert [acme] == repo.find(Query())
            assert 1 == repo.count(Query())

    def test_ids_by_reads_the_ids_of_unique_values_and_ids(self, contract_store: Store) -> None:
        """``ids_by`` maps the values (external_refs, or ids) found to ids, archived too."""
        acme = _org(external_ref="ERP-1")
        globex = archive(_org(name="Globex", external_ref="ERP-2"), now=T0)[0]
        self._commit(contract_store, acme, globex)
        missing = uuid7()
        with contract_store.unit_of_work(write=False) as uow:
            repo = uow.repository(Organization)
            assert {"ERP-1": acme.id, "ERP-2": globex.id} == repo.ids_by(
                "external_ref", ["ERP-1", "ERP-2", "ERP-3"]
            )
            assert {acme.id: acme.id} == repo.ids_by("id", [acme.id, missing])
            assert {} == repo.ids_by("external_ref", [])
            with pytest.raises(ValidationError) as error:
                repo.ids_by("name", ["Acme"])
            assert "unknown_field" == error.value.code

    def test_every_entity_type_reads_back_equal(self, contract_store: Store) -> None:
        """Random records of every type (references left empty) come back equal."""

        @settings(
            max_examples=self.round_trip_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(
            st.lists(
                _every_type(),
                max_size=6,
                unique_by=(lambda e: e.id, lambda e: (type(e), getattr(e, "key", e.id))),
            )
        )
        def check(entities: list[Entity]) -> None:
            with contract_store.unit_of_work() as uow:  # never committed: the store stays empty
                for entity in entities:
                    uow.repository(type(entity)).add(entity)
                for entity in entities:
                    repo = uow.repository(type(entity))
                    assert entity == repo.get(entity.id)
                    assert {entity.id: entity} == repo.get_many([entity.id])
                    assert [entity] == repo.find(
                        Query(filters=[Eq("id", entity.id)], archived=None)
                    )

        check()

    def test_get_of_a_missing_id_raises_not_found(self, contract_store: Store) -> None:
        """``get`` raises NotFoundError carrying the entity type and the id."""
        missing = uuid7()
        with contract_store.unit_of_work(write=False) as uow:
            with pytest.raises(NotFoundError) as info:
                uow.repository(Contact).get(missing)
            assert ("contact", missing) == (info.value.entity, info.value.id)
            assert {} == uow.repository(Contact).get_many([missing])

    def test_store_get_reads_committed_records_only(self, contract_store: Store) -> None:
        """``Store.get`` sees what was committed, not what a rolled-back unit wrote."""
        kept, dropped = _org("Kept"), _org("Dropped")
        self._commit(contract_store, kept)
        with contract_store.unit_of_work() as uow:
            uow.repository(Organization).add(dropped)
        assert kept == contract_store.get(Organization, kept.id)
        with pytest.raises(NotFoundError) as info:
            contract_store.get(Organization, dropped.id)
        assert ("organization", dropped.id) == (info.value.entity, info.value.id)

    def test_add_many_inserts_every_record(self, contract_store: Store) -> None:
        """``add_many`` is ``add`` for a batch."""
        orgs = [_org(f"Org {i:02d}") for i in range(30)]
        with contract_store.unit_of_work() as uow:
            uow.repository(Organization).add_many(orgs)
            uow.commit()
        with contract_store.unit_of_work(write=False) as uow:
            repo = uow.repository(Organization)
            assert orgs == repo.find(Query(order=[Order("name")]))
            assert {o.id: o for o in orgs} == repo.get_many([o.id for o in orgs])

    # ----------------------------------------------------------- uniqueness
    def test_duplicate_id_raises_duplicate_error(self, contract_store: Store) -> None:
        """Adding a second record with an existing id raises DuplicateError."""
        acme = _org()
        self._commit(contract_store, acme)
        with contract_store.unit_of_work() as uow, pytest.raises(DuplicateError) as info:
            uow.repository(Organization).add(attrs.evolve(_org("Other"), id=acme.id))
        assert ("organization", "id") == (info.value.entity, info.value.field)
        assert acme == self._stored(contract_store, Organization, acme.id)

    @pytest.mark.parametrize("archived", [False, True], ids=["live", "archived"])
    def test_duplicate_external_ref_raises_duplicate_error(
        self, contract_store: Store, archived: bool
    ) -> None:
        """``external_ref`` is unique among all records, archived ones included."""
        first = _org(external_ref="ERP-7")
        if archived:
            first = archive(first, now=T0)[0]
        self._commit(contract_store, first)
        second = _org("Other", external_ref="ERP-7")
        with contract_store.unit_of_work() as uow, pytest.raises(DuplicateError) as info:
            uow.repository(Organization).add(second)
        assert ("organization", "external_ref") == (info.value.entity, info.value.field)
        assert self._stored(contract_store, Organization, second.id) is None

    @pytest.mark.parametrize("archived", [False, True], ids=["live", "archived"])
    def test_duplicate_master_key_raises_duplicate_error(
        self, contract_store: Store, archived: bool
    ) -> None:
        """A master's ``key`` is unique within its type, archived ones included."""
        first = _source("referral")
        if archived:
            first = archive(first, now=T0)[0]
        self._commit(contract_store, first)
        with contract_store.unit_of_work() as uow, pytest.raises(DuplicateError) as info:
            uow.repository(Source).add(_source("referral"))
        assert ("source", "key") == (info.value.entity, info.value.field)

    def test_same_key_in_another_master_type_is_allowed(self, contract_store: Store) -> None:
        """Uniqueness is per entity type: a source and a zone may share a key."""
        source = _source("norte")
        zone = create(Zone, id=uuid7(), now=T0, key="norte", name="Norte")[0]
        self._commit(contract_store, source, zone)
        with contract_store.unit_of_work(write=False) as uow:
            assert source == uow.repository(Source).get_by("key", "norte")
            assert zone == uow.repository(Zone).get_by("key", "norte")

    def test_many_records_without_external_ref_coexist(self, contract_store: Store) -> None:
        """``None`` is not a value: any number of records may lack an external_ref."""
        orgs = [_org(f"Org {i}") for i in range(3)]
        self._commit(contract_store, *orgs)
        with contract_store.unit_of_work(write=False) as uow:
            assert 3 == uow.repository(Organization).count(Query())

    def test_update_to_a_taken_external_ref_raises_duplicate_error(
        self, contract_store: Store
    ) -> None:
        """``update`` checks uniqueness too."""
        acme, beta = _org(external_ref="A"), _org("Beta", external_ref="B")
        self._commit(contract_store, acme, beta)
        changed, _ = update(beta, {"external_ref": "A"}, now=T0)
        with contract_store.unit_of_work() as uow, pytest.raises(DuplicateError) as info:
            uow.repository(Organization).update(changed, expected_version=beta.version)
        assert "external_ref" == info.value.field
        assert beta == self._stored(contract_store, Organization, beta.id)

    def test_releasing_an_external_ref_lets_another_record_take_it(
        self, contract_store: Store
    ) -> None:
        """After an update clears a unique value, a new record may use it."""
        acme = _org(external_ref="ERP-1")
        self._commit(contract_store, acme)
        cleared, _ = update(acme, {"external_ref": None}, now=T0)
        newcomer = _org("New", external_ref="ERP-1")
        with contract_store.unit_of_work() as uow:
            uow.repository(Organization).update(cleared, expected_version=acme.version)
            uow.repository(Organization).add(newcomer)
            uow.commit()
        with contract_store.unit_of_work(write=False) as uow:
            assert newcomer == uow.repository(Organization).get_by("external_ref", "ERP-1")

    # ----------------------------------------------------------- references
    def test_reference_to_a_missing_record_raises_validation_error(
        self, contract_store: Store
    ) -> None:
        """A contact whose organization does not exist is refused with code ``reference``."""
        orphan = _contact(organization_id=OrganizationId(uuid7()))
        with contract_store.unit_of_work() as uow, pytest.raises(ValidationError) as info:
            uow.repository(Contact).add(orphan)
        assert "reference" == info.value.code
        assert self._stored(contract_store, Contact, orphan.id) is None

    def test_reference_on_update_is_checked(self, contract_store: Store) -> None:
        """Pointing an existing record at a missing one is refused too."""
        ana = _contact()
        self._commit(contract_store, ana)
        changed, _ = update(ana, {"organization_id": OrganizationId(uuid7())}, now=T0)
        with contract_store.unit_of_work() as uow, pytest.raises(ValidationError) as info:
            uow.repository(Contact).update(changed, expected_version=ana.version)
        assert "reference" == info.value.code

    def test_references_to_existing_records_are_accepted(self, contract_store: Store) -> None:
        """References to records added earlier in the same unit of work, or archived, hold."""
        old = archive(_org("Old"), now=T0)[0]
        self._commit(contract_store, old)
        acme = _org()
        ana = _contact(organization_id=acme.id)
        former = _contact(organization_id=old.id)
        with contract_store.unit_of_work() as uow:
            uow.repository(Organization).add(acme)
            uow.repository(Contact).add_many([ana, former])
            uow.commit()
        assert ana == self._stored(contract_store, Contact, ana.id)
        assert former == self._stored(contract_store, Contact, former.id)

    # ------------------------------------------------------------- versions
    def test_update_with_the_current_version_replaces_the_record(
        self, contract_store: Store
    ) -> None:
        """``update`` stores the new entity when the stored version is the expected one."""
        acme = _org()
        self._commit(contract_store, acme)
        changed, _ = update(acme, {"name": "Acme Ibérica", "tags": ("vip",)}, now=T0)
        with contract_store.unit_of_work() as uow:
            uow.repository(Organization).update(changed, expected_version=acme.version)
            assert changed == uow.repository(Organization).get(acme.id)
            uow.commit()
        assert changed == self._stored(contract_store, Organization, acme.id)
        assert 2 == changed.version

    def test_stale_version_raises_concurrency_error(self, contract_store: Store) -> None:
        """An update based on an old version fails and leaves the newer one in place."""
        acme = _org()
        self._commit(contract_store, acme)
        first, _ = update(acme, {"name": "First"}, now=T0)
        second, _ = update(acme, {"name": "Second"}, now=T0)  # also made from version 1
        with contract_store.unit_of_work() as uow:
            uow.repository(Organization).update(first, expected_version=1)
            uow.commit()
        with contract_store.unit_of_work() as uow, pytest.raises(ConcurrencyError) as info:
            uow.repository(Organization).update(second, expected_version=1)
        assert ("organization", acme.id) == (info.value.entity, info.value.id)
        assert (1, 2) == (info.value.expected_version, info.value.actual_version)
        assert first == self._stored(contract_store, Organization, acme.id)

    def test_update_of_a_missing_record_raises_not_found(self, contract_store: Store) -> None:
        """There is nothing to update."""
        ghost, _ = update(_org(), {"name": "Ghost"}, now=T0)
        with contract_store.unit_of_work() as uow, pytest.raises(NotFoundError) as info:
            uow.repository(Organization).update(ghost, expected_version=1)
        assert ("organization", ghost.id) == (info.value.entity, info.value.id)

    def test_archived_records_are_updated_like_any_other(self, contract_store: Store) -> None:
        """Archiving is an update; ``find`` then hides the record by default."""
        acme = _org()
        self._commit(contract_store, acme)
        archived, _ = archive(acme, now=T0)
        with contract_store.unit_of_work() as uow:
            uow.repository(Organization).update(archived, expected_version=acme.version)
            uow.commit()
        with contract_store.unit_of_work(write=False) as uow:
            repo = uow.repository(Organization)
            assert [] == repo.find(Query())
            assert [archived] == repo.find(Query(archived=True))
            assert (0, 1) == (repo.count(Query()), repo.count(Query(archived=None)))

    # --------------------------------------------------------- transactions
    def test_rolls_back_unless_committed(self, contract_store: Store) -> None:
        """Work not committed is gone when the unit of work ends."""
        acme = _org(external_ref="ERP-1")
        with contract_store.unit_of_work() as uow:
            uow.repository(Organization).add(acme)
        with contract_store.unit_of_work(write=False) as uow:
            repo = uow.repository(Organization)
            with pytest.raises(NotFoundError):
                repo.get(acme.id)
            assert [] == repo.find(Query(archived=None))
            assert repo.get_by("external_ref", "ERP-1") is None
        self._commit(contract_store, acme)  # the id and the external_ref are free
        assert acme == self._stored(contract_store, Organization, acme.id)

    def test_explicit_rollback_discards_the_work(self, contract_store: Store) -> None:
        """``rollback()`` discards what the unit of work did."""
        acme = _org()
        with contract_store.unit_of_work() as uow:
            uow.repository(Organization).add(acme)
            uow.rollback()
        assert self._stored(contract_store, Organization, acme.id) is None

    def test_a_failing_unit_of_work_rolls_back(self, contract_store: Store) -> None:
        """An exception leaving the block undoes everything the block did."""
        acme, beta = _org(), _org("Beta")
        self._commit(contract_store, acme)
        changed, _ = update(acme, {"name": "Changed"}, now=T0)

        def fail() -> None:
            with contract_store.unit_of_work() as uow:
                uow.repository(Organization).add(beta)
                uow.repository(Organization).update(changed, expected_version=1)
                self._append(uow, acme.id, 2)
                raise _Boom

        with pytest.raises(_Boom):
            fail()
        assert acme == self._stored(contract_store, Organization, acme.id)
        assert self._stored(contract_store, Organization, beta.id) is None
        with contract_store.unit_of_work(write=False) as uow:
            assert [] == uow.audit.history(acme.id)

    def test_a_store_error_rolls_back_the_unit_of_work(self, contract_store: Store) -> None:
        """When a write fails, the earlier writes of the same unit of work do not survive."""
        acme = _org(external_ref="A")
        self._commit(contract_store, acme)
        beta = _org("Beta")

        def fail() -> None:
            with contract_store.unit_of_work() as uow:
                uow.repository(Organization).add(beta)
                uow.repository(Organization).add(_org("Clash", external_ref="A"))
                uow.commit()

        with pytest.raises(DuplicateError):
            fail()
        assert self._stored(contract_store, Organization, beta.id) is None

    def test_reads_see_own_uncommitted_writes(self, contract_store: Store) -> None:
        """Inside a unit of work, get, get_by, find and count see what it wrote."""
        acme = _org(external_ref="ERP-1")
        with contract_store.unit_of_work() as uow:
            repo = uow.repository(Organization)
            repo.add(acme)
            assert acme == repo.get(acme.id)
            assert acme == repo.get_by("external_ref", "ERP-1")
            assert [acme] == repo.find(Query(filters=[Eq("name", "Acme")]))
            assert 1 == repo.count(Query())
            changed, _ = update(acme, {"name": "Acme 2"}, now=T0)
            repo.update(changed, expected_version=1)
            assert [changed] == repo.find(Query(filters=[Contains("name", "acme 2")]))

    def test_committed_work_is_visible_to_later_units_of_work(self, contract_store: Store) -> None:
        """After ``commit`` a new unit of work, reading or writing, sees the change."""
        acme = _org()
        self._commit(contract_store, acme)
        for write in (False, True):
            with contract_store.unit_of_work(write=write) as uow:
                assert acme == uow.repository(Organization).get(acme.id)

    def test_savepoint_rollback_keeps_the_outer_work(self, contract_store: Store) -> None:
        """A failing savepoint undoes only its own block; the rest commits."""
        acme = _org(external_ref="A")
        self._commit(contract_store, acme)
        beta, gamma, delta = _org("Beta"), _org("Gamma"), _org("Delta")
        with contract_store.unit_of_work() as uow:
            repo = uow.repository(Organization)
            repo.add(beta)

            def clash() -> None:
                with uow.savepoint():
                    repo.add(gamma)
                    repo.add(_org("Clash", external_ref="A"))

            def abandon() -> None:
                with uow.savepoint():
                    repo.add(_org("Lost"))
                    raise _Boom

            with pytest.raises(DuplicateError):
                clash()
            with pytest.raises(_Boom):
                abandon()
            with uow.savepoint():
                repo.add(delta)
            assert {beta.id, delta.id} == set(repo.get_many([beta.id, gamma.id, delta.id]))
            uow.commit()
        with contract_store.unit_of_work(write=False) as uow:
            found = uow.repository(Organization).find(Query(order=[Order("name")]))
        assert ["Acme", "Beta", "Delta"] == [o.name for o in found]

    # --------------------------------------------------------- find / count
    def test_find_and_count_agree_with_select(self, contract_store: Store) -> None:
        """For random records and queries, ``find`` is ``select`` and ``count`` its size."""

        @settings(
            max_examples=self.find_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            users, markets, organizations = data.draw(_books, label="records")
            queries = data.draw(_query_lists, label="queries")
            with contract_store.unit_of_work() as uow:  # never committed: the store stays empty
                uow.repository(User).add_many(users)
                uow.repository(Market).add_many(markets)
                uow.repository(Organization).add_many(organizations)
                repo = uow.repository(Organization)
                for query in queries:
                    expected = select(organizations, query)
                    found = repo.find(query)
                    assert _ids(expected) == _ids(found)
                    assert expected == found
                    unpaged = Query(filters=query.filters, archived=query.archived)
                    assert len(select(organizations, unpaged)) == repo.count(query)

        check()

    def test_find_on_committed_records_agrees_with_select(self, contract_store: Store) -> None:
        """The same holds for committed records read in a read-only unit of work."""
        users = _users([uuid7(), uuid7()])
        orgs = [
            _org(name, owner_id=users[i % 2].id if i % 3 else None, tags=(_TAGS[i % 4],))
            for i, name in enumerate(_NAMES)
        ]
        orgs[3] = archive(orgs[3], now=T0)[0]
        self._commit(contract_store, *users, *orgs)
        queries = [
            Query(order=[Order("name")]),
            Query(order=[Order("owner_id", descending=True), Order("name")], archived=None),
            Query(filters=[Contains("name", "ss")], order=[Order("name", descending=True)]),
            Query(filters=[Contains("name", "%")]),
            Query(filters=[Has("tags", "norte")], limit=2, offset=1),
            Query(filters=[In("owner_id", [None, users[0].id])], archived=True),
            Query(filters=[Range("name", "B", "a")], order=[Order("name")]),
        ]
        with contract_store.unit_of_work(write=False) as uow:
            repo = uow.repository(Organization)
            for query in queries:
                assert _ids(select(orgs, query)) == _ids(repo.find(query))
                assert len(select(orgs, Query(filters=query.filters, archived=query.archived))) == (
                    repo.count(query)
                )

    # --------------------------------------------------------------- audit
    @staticmethod
    def _append(uow: UnitOfWork, entity_id: UUID, version: int, actor: str | None = "ana") -> None:
        uow.audit.append(
            entity="organization",
            entity_id=entity_id,
            version=version,
            action=AuditAction.CREATE if version == 1 else AuditAction.UPDATE,
            changes=[
                AuditChange("name", None if version == 1 else f"v{version - 1}", f"v{version}"),
                AuditChange("tags", [], ["vip", "ñ"]),
                AuditChange("amount", None, {"amount": "12.50", "currency": "EUR"}),
            ],
            actor=actor,
            at=T0 + timedelta(minutes=version),
        )

    @staticmethod
    def _plain(entries: list[AuditEntry]) -> list[tuple[Any, ...]]:
        return [
            (e.entity, e.entity_id, e.version, e.action, e.changes, e.actor, e.at) for e in entries
        ]

    def test_audit_history_lists_entries_oldest_first(self, contract_store: Store) -> None:
        """``history`` returns one record's entries in the order they were appended."""
        acme, beta = uuid7(), uuid7()
        with contract_store.unit_of_work() as uow:
            self._append(uow, acme, 1)
            self._append(uow, beta, 1, actor=None)
            self._append(uow, acme, 2)
            uow.commit()
        with contract_store.unit_of_work() as uow:
            self._append(uow, acme, 3)
            pending = uow.audit.history(acme)  # own uncommitted entries included
            uow.commit()
        with contract_store.unit_of_work(write=False) as uow:
            history = uow.audit.history(acme)
            other = uow.audit.history(beta)
        assert [1, 2, 3] == [e.version for e in history]
        assert self._plain(history) == self._plain(pending)
        assert [AuditAction.CREATE, AuditAction.UPDATE, AuditAction.UPDATE] == [
            e.action for e in history
        ]
        assert AuditChange("tags", [], ["vip", "ñ"]) == history[0].changes[1]
        assert T0 + timedelta(minutes=1) == history[0].at
        assert ("ana", None) == (history[0].actor, other[0].actor)
        assert [] == _history(contract_store, uuid7())

    def test_audit_sequence_only_grows_across_units_of_work(self, contract_store: Store) -> None:
        """Sequence numbers increase in append order, across commits (gaps allowed)."""
        ids = [uuid7() for _ in range(3)]
        for round_ in range(1, 4):
            with contract_store.unit_of_work() as uow:
                for entity_id in ids:
                    self._append(uow, entity_id, round_)
                uow.commit()
        with contract_store.unit_of_work(write=False) as uow:
            histories = [uow.audit.history(i) for i in ids]
        seqs = sorted(
            (e.seq, round_, column)
            for column, history in enumerate(histories)
            for round_, e in enumerate(history)
        )
        assert [(r, c) for r in range(3) for c in range(3)] == [(r, c) for _, r, c in seqs]
        assert len({s for s, _, _ in seqs}) == 9

    def test_audit_is_rolled_back_with_the_transaction(self, contract_store: Store) -> None:
        """Entries of a unit of work that is not committed, or of a failed savepoint, vanish."""
        acme = uuid7()
        with contract_store.unit_of_work() as uow:
            self._append(uow, acme, 1)
        assert [] == _history(contract_store, acme)
        with contract_store.unit_of_work() as uow:
            self._append(uow, acme, 1)

            def abandon() -> None:
                with uow.savepoint():
                    self._append(uow, acme, 2)
                    raise _Boom

            with pytest.raises(_Boom):
                abandon()
            self._append(uow, acme, 3)
            uow.commit()
        assert [1, 3] == [e.version for e in _history(contract_store, acme)]


def _history(store: Store, entity_id: UUID) -> list[AuditEntry]:
    """The committed audit history of ``entity_id``, read in a fresh unit of work."""
    with store.unit_of_work(write=False) as uow:
        return uow.audit.history(entity_id)
