"""``crm.duplicates``: find likely duplicates, check new records, merge and undo.

:meth:`DuplicateService.find` loads the records, builds their profiles and
runs :func:`crmkit.core.duplicates.find_duplicates`: blocking, rapidfuzz
comparisons and a Fellegi-Sunter model fitted by EM on the book.  The model
it fits is kept and used by the check on create.

The check on create (``crmkit.open(..., duplicate_check="warn" | "refuse")``,
or :attr:`DuplicateService.on_create`) looks, inside the creating
transaction, for existing records that share the new one's e-mail address (up
to case and ``+tag``), a phone number, or its name (contacts: first and last
name in either order, ignoring case; organizations: the name key or the tax
id), and scores them with the model.  ``"refuse"`` raises
:class:`~crmkit.DuplicateError` (nothing is written); ``"warn"`` creates the
record, logs a warning on the ``crmkit.duplicates`` logger and reports the
candidates in :attr:`DuplicateService.last_check`.

.. versionadded:: 0.1
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Final, Literal, TypeVar
from uuid import UUID

from attrs import frozen

from crmkit.core.duplicates import (
    DEFAULT_MAX_BLOCK,
    DEFAULT_THRESHOLD,
    Candidate,
    ContactProfile,
    DuplicateEntity,
    Matching,
    Model,
    OrganizationProfile,
    Spec,
    candidate_pairs,
    contact_spec,
    email_key,
    find_duplicates,
    organization_spec,
    score_pairs,
)
from crmkit.core.entities import Contact, Entity, Organization
from crmkit.core.errors import DuplicateError, ValidationError
from crmkit.core.merge import MergeJournal, MergePlan
from crmkit.core.query import Contains, Eq, Filter, Has, In, Query
from crmkit.services.merge import entity_class, execute_merge, plan_merge, undo_merge
from crmkit.stores.base import UnitOfWork

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["DuplicateCheck", "DuplicateService", "OnCreate"]

logger = logging.getLogger("crmkit.duplicates")

R = TypeVar("R", Contact, Organization)
P = TypeVar("P", ContactProfile, OrganizationProfile)

#: What creating a contact or organization does about likely duplicates.
OnCreate = Literal["off", "warn", "refuse"]

#: At most this many existing records are read per lookup of the check on create.
CHECK_LIMIT: Final = 200


@frozen
class DuplicateCheck:
    """The outcome of the duplicate check of one created record.

    Attributes:
        entity: ``"contact"`` or ``"organization"``.
        record: the new record (created with ``"warn"``; not written with
            ``"refuse"``).
        candidates: the existing records it probably duplicates, as
            :class:`~crmkit.core.duplicates.Candidate` pairs, most likely first
            (``()``: none found).
    """

    entity: DuplicateEntity
    record: Contact | Organization
    candidates: tuple[Candidate, ...]


class DuplicateService:
    """Likely duplicates: on demand (:meth:`find`) and on create (:attr:`on_create`).

    Attributes:
        on_create: ``"off"`` (default), ``"warn"`` or ``"refuse"``.
        threshold: the match probability from which the check on create
            reports a candidate (default 0.5).
    """

    def __init__(self, crm: CRM, *, on_create: OnCreate = "off"):
        self._crm = crm
        self._on_create = _check_on_create(on_create)
        self.threshold: float = DEFAULT_THRESHOLD
        self._models: dict[DuplicateEntity, Model] = {}
        self._last: ContextVar[DuplicateCheck | None] = ContextVar(
            f"crmkit-duplicates-{id(self)}", default=None
        )

    def __repr__(self) -> str:
        return f"<DuplicateService on_create={self.on_create!r}>"

    @property
    def on_create(self) -> OnCreate:
        """What creating a contact or organization does about a likely duplicate."""
        return self._on_create

    @on_create.setter
    def on_create(self, value: OnCreate) -> None:
        self._on_create = _check_on_create(value)

    # ------------------------------------------------------------ on demand
    def find(
        self,
        entity: DuplicateEntity = "contact",
        *,
        threshold: float = DEFAULT_THRESHOLD,
        max_block: int = DEFAULT_MAX_BLOCK,
        archived: bool | None = False,
        model: Model | None = None,
    ) -> Matching:
        """The likely duplicates among the stored contacts or organizations.

        Args:
            entity: ``"contact"`` (default) or ``"organization"``.
            threshold: the match probability a pair needs (default 0.5, the
                calibrated decision; 0 lists every compared pair).
            max_block: skip blocking keys shared by more records than this.
            archived: ``False`` (default) searches active records, ``None``
                all, ``True`` only archived ones.
            model: score with this model instead of fitting one on the records.

        Returns:
            The :class:`~crmkit.core.duplicates.Matching`: candidates with
            probability, weight and reasons, and the model.  A fitted model is
            kept for the check on create.

        Raises:
            ValidationError: an unknown entity, a bad threshold or max_block.
        """
        cls = entity_class(entity)
        if archived is not None and not isinstance(archived, bool):
            raise ValidationError("archived", "must be True, False or None", value=archived)
        records = self._crm._read(lambda uow: uow.repository(cls).find(Query(archived=archived)))
        if cls is Contact:
            contacts = [ContactProfile.of(r) for r in records if isinstance(r, Contact)]
            matching = find_duplicates(
                contact_spec(), contacts, model=model, threshold=threshold, max_block=max_block
            )
        else:
            organizations = [
                OrganizationProfile.of(r) for r in records if isinstance(r, Organization)
            ]
            matching = find_duplicates(
                organization_spec(),
                organizations,
                model=model,
                threshold=threshold,
                max_block=max_block,
            )
        if matching.model.fitted:
            self._models[entity] = matching.model
        return matching

    def model(self, entity: DuplicateEntity = "contact") -> Model:
        """The model the check on create uses: the last one :meth:`find` fitted, or the default."""
        entity_class(entity)
        found = self._models.get(entity)
        if found is not None:
            return found
        return (
            contact_spec().default_model
            if entity == "contact"
            else organization_spec().default_model
        )

    # ---------------------------------------------------------------- merge
    def plan_merge(
        self,
        survivor: UUID,
        merged: Sequence[UUID],
        *,
        entity: DuplicateEntity = "contact",
        choose: Mapping[str, UUID] | None = None,
    ) -> MergePlan:
        """What merging ``merged`` into ``survivor`` would do; nothing is written (dry run).

        Args:
            survivor: the id of the record that stays.
            merged: the ids of the records folded into it.
            entity: ``"contact"`` (default) or ``"organization"``.
            choose: ``{field: record id}``: take these fields from that record;
                otherwise the survivor keeps its values, fills its empty fields
                from the merged records, and list fields take the union.

        Returns:
            The :class:`~crmkit.core.merge.MergePlan`: field choices and the
            related records that will be re-pointed.  Pass it to :meth:`merge`.

        Raises:
            ValidationError: bad arguments.
            NotFoundError: a record does not exist.
        """
        return plan_merge(self._crm, entity, survivor, merged, choose)

    def merge(self, plan: MergePlan) -> MergeJournal:
        """Execute ``plan`` in one transaction and journal it (see :meth:`undo`).

        The survivor takes the planned fields, every record referring to a
        merged record refers to the survivor instead, the merged records are
        archived; every change is audited.

        Returns:
            The :class:`~crmkit.core.merge.MergeJournal` entry; its ``id`` undoes it.

        Raises:
            ConcurrencyError: a record of the plan changed since it was planned.
            ValidationError: invalid merged values, or a plugin vetoed a change.
        """
        return execute_merge(self._crm, plan)

    def undo(self, merge: UUID) -> MergeJournal:
        """Undo a merge: every record it touched is written back exactly as it was.

        Raises:
            NotFoundError: no such merge.
            ValidationError: it was undone already (code ``undone``).
            ConcurrencyError: a record changed since the merge; nothing is undone.
        """
        return undo_merge(self._crm, merge)

    # ------------------------------------------------------------ on create
    @property
    def last_check(self) -> DuplicateCheck | None:
        """The duplicate check of the last record created in this thread (``None``: none yet).

        Kept per :mod:`contextvars` context, like ``crm.last_delivery``.
        """
        return self._last.get()

    def candidates_for(self, record: Contact | Organization) -> tuple[Candidate, ...]:
        """The stored records ``record`` probably duplicates (whether it is stored or not).

        The lookup the check on create does: records sharing an e-mail key, a
        phone or the name, scored with :meth:`model`.
        """
        if not isinstance(record, Contact | Organization):
            raise ValidationError(
                "record", "must be a contact or an organization", code="type", value=record
            )
        return self._crm._read(lambda uow: self._candidates(uow, record))

    def _screen(self, uow: UnitOfWork, record: Entity) -> None:
        """Run the check on create for ``record`` (called before it is added)."""
        if self.on_create == "off" or not isinstance(record, Contact | Organization):
            return
        candidates = self._candidates(uow, record)
        entity: DuplicateEntity = "contact" if isinstance(record, Contact) else "organization"
        check = DuplicateCheck(entity, record, candidates)
        self._last.set(check)
        if not candidates:
            return
        field = _agreeing(candidates[0])
        if self.on_create == "refuse":
            raise DuplicateError(entity, field, candidates=candidates)
        self._warn(entity, record, candidates[0], field)

    def _screen_bulk(self, uow: UnitOfWork, records: Sequence[Entity]) -> None:
        """Run the check on create for many new records at once (``bulk_create``).

        ``"refuse"`` raises for the first likely duplicate (its ``field``
        starts with the record's index, ``"[12].email"``); ``"warn"`` logs
        each one.  :attr:`last_check` becomes the last record's check.

        Raises:
            DuplicateError: with ``"refuse"``, a record is a likely duplicate.
        """
        if self.on_create == "off" or not records:
            return
        found = self._candidates_many(uow, records)
        for i, (record, candidates) in enumerate(zip(records, found, strict=True)):
            if not candidates or not isinstance(record, Contact | Organization):
                continue
            entity: DuplicateEntity = "contact" if isinstance(record, Contact) else "organization"
            field = _agreeing(candidates[0])
            if self.on_create == "refuse":
                self._last.set(DuplicateCheck(entity, record, candidates))
                raise DuplicateError(entity, f"[{i}].{field}", candidates=candidates)
            self._warn(entity, record, candidates[0], field)
        last = records[-1]
        if isinstance(last, Contact | Organization):
            entity = "contact" if isinstance(last, Contact) else "organization"
            self._last.set(DuplicateCheck(entity, last, found[-1]))

    def _candidates_many(
        self, uow: UnitOfWork, records: Sequence[Entity]
    ) -> list[tuple[Candidate, ...]]:
        """The likely duplicates of each new record, in one blocking pass.

        Stored records are looked up a chunk of new records at a time, by
        exact keys, one ``In`` query per key (contacts: e-mail address, last
        name, in a few spellings; organizations: name key, tax id); those and the
        new records are then blocked together (:func:`candidate_pairs`) and
        each new record is scored against the stored records and the new
        records before it sharing a blocking key.  Work grows linearly with
        the number of records, not with their square.
        """
        contacts = [r for r in records if isinstance(r, Contact)]
        organizations = [r for r in records if isinstance(r, Organization)]
        if contacts and organizations:  # one type per call in practice: split if not
            by_id = {
                c.id: found
                for group in (contacts, organizations)
                for c, found in zip(group, self._candidates_many(uow, group), strict=True)
            }
            return [by_id.get(r.id, ()) for r in records]
        if contacts:
            return self._scored(
                uow,
                contacts,
                Contact,
                _contact_keys,
                ContactProfile.of,
                contact_spec(),
                self.model("contact"),
            )
        if organizations:
            return self._scored(
                uow,
                organizations,
                Organization,
                _organization_keys,
                OrganizationProfile.of,
                organization_spec(),
                self.model("organization"),
            )
        return [() for _ in records]

    def _scored(
        self,
        uow: UnitOfWork,
        records: Sequence[R],
        cls: type[R],
        lookups: Callable[[Sequence[R]], dict[str, set[object]]],
        profile_of: Callable[[R], P],
        spec: Spec[P],
        model: Model,
    ) -> list[tuple[Candidate, ...]]:
        new_ids = {r.id for r in records}
        stored: dict[UUID, R] = {}
        repo = uow.repository(cls)
        for start in range(0, len(records), _CHUNK):
            chunk = records[start : start + _CHUNK]
            for field, values in lookups(chunk).items():
                if not values:
                    continue
                query = Query(
                    filters=(In(field, tuple(sorted(values, key=str))),),
                    archived=None,
                    limit=CHECK_LIMIT * len(chunk),
                )
                for other in repo.find(query):
                    if other.id not in new_ids:
                        stored[other.id] = other
        profiles = [profile_of(r) for r in records]
        profiles += [profile_of(r) for r in stored.values()]
        pairs, counts, _ = candidate_pairs(profiles, spec.keys, max_block=DEFAULT_MAX_BLOCK)
        n = len(records)
        compared: dict[int, list[tuple[P, P]]] = {}
        # i < j: a new record is checked against stored ones and the new ones before it
        for i, j in pairs:
            if j < n:
                compared.setdefault(j, []).append((profiles[j], profiles[i]))
            elif i < n:
                compared.setdefault(i, []).append((profiles[i], profiles[j]))
        return [
            tuple(
                score_pairs(
                    spec,
                    compared[k],
                    model,
                    key_counts=counts,
                    threshold=self.threshold,
                )
            )
            if k in compared
            else ()
            for k in range(n)
        ]

    def _warn(
        self, entity: DuplicateEntity, record: Contact | Organization, best: Candidate, field: str
    ) -> None:
        logger.warning(
            "new %s %s is probably the same as %s %s (probability %.3f, %s agrees)",
            entity,
            record.id,
            entity,
            best.right if best.left == record.id else best.left,
            best.probability,
            field,
        )

    def _candidates(self, uow: UnitOfWork, record: Contact | Organization) -> tuple[Candidate, ...]:
        if isinstance(record, Contact):
            contacts = _lookup(uow, Contact, _contact_filters(record), record)
            profile = ContactProfile.of(record)
            others = [ContactProfile.of(c) for c in contacts]
            return tuple(
                score_pairs(
                    contact_spec(),
                    [(profile, other) for other in others],
                    self.model("contact"),
                    key_counts=_phone_counts(profile.phones, others),
                    threshold=self.threshold,
                )
            )
        found = _lookup(uow, Organization, _organization_filters(record), record)
        org = OrganizationProfile.of(record)
        orgs = [OrganizationProfile.of(o) for o in found]
        return tuple(
            score_pairs(
                organization_spec(),
                [(org, other) for other in orgs],
                self.model("organization"),
                key_counts=_phone_counts(org.phones, orgs),
                threshold=self.threshold,
            )
        )


#: New records whose stored look-alikes one query looks up (bulk checks).
_CHUNK: Final = 500


def _agreeing(candidate: Candidate) -> str:
    """The field whose agreement weighs most in ``candidate``."""
    return max(candidate.reasons, key=lambda r: r.weight).field


def _contact_keys(contacts: Sequence[Contact]) -> dict[str, set[object]]:
    """The exact values to look stored contacts up by: the e-mail address (as
    written, lower case, and its key) and the names as last name (either
    order; as written, lower, title and upper case)."""
    emails: set[object] = set()
    names: set[object] = set()
    for c in contacts:
        if c.email is not None:
            value = c.email.value
            emails.update((value, value.lower(), email_key(value)))
        for name in (c.last_name, c.first_name):
            if name:
                names.update((name, name.lower(), name.title(), name.upper()))
    emails.discard(None)
    return {"email": emails, "last_name": names}


def _organization_keys(organizations: Sequence[Organization]) -> dict[str, set[object]]:
    """The exact values to look stored organizations up by: the name key, the
    tax id (as written and without separators)."""
    taxes: set[object] = set()
    for o in organizations:
        if o.tax_id:
            taxes.update((o.tax_id, re.sub(r"[\s.\-/]", "", o.tax_id).upper()))
    return {"name_key": {o.name_key for o in organizations if o.name_key}, "tax_id": taxes}


def _check_on_create(value: object) -> OnCreate:
    if value == "off":
        return "off"
    if value == "warn":
        return "warn"
    if value == "refuse":
        return "refuse"
    raise ValidationError(
        "duplicate_check", 'must be "off", "warn" or "refuse"', code="choice", value=value
    )


def _lookup(uow: UnitOfWork, cls: type[R], filters: Sequence[Filter], record: R) -> list[R]:
    """The stored records matching any of ``filters``, ``record`` itself left out."""
    repo = uow.repository(cls)
    found: dict[object, R] = {}
    for f in filters:
        for other in repo.find(Query(filters=(f,), archived=None, limit=CHECK_LIMIT)):
            if other.id != record.id:
                found[other.id] = other
    return list(found.values())


def _contact_filters(contact: Contact) -> list[Filter]:
    filters: list[Filter] = [Has("phones", phone) for phone in contact.phones]
    if contact.email is not None:
        local = contact.email.value.rpartition("@")[0].split("+", 1)[0]
        filters.append(Contains("email", local or contact.email.value))
    if contact.last_name:
        filters.append(Contains("last_name", contact.last_name))
        filters.append(Contains("first_name", contact.last_name))
    return filters


def _organization_filters(organization: Organization) -> list[Filter]:
    filters: list[Filter] = [Has("phones", phone) for phone in organization.phones]
    if organization.name_key:
        filters.append(Eq("name_key", organization.name_key))
    if organization.tax_id:
        filters.append(Eq("tax_id", organization.tax_id))
    return filters


def _phone_counts(
    phones: frozenset[str], others: Sequence[ContactProfile] | Sequence[OrganizationProfile]
) -> dict[str, int]:
    """How many records (the new one included) hold each of the new record's phones."""
    return {f"p:{p}": 1 + sum(p in o.phones for o in others) for p in phones}
