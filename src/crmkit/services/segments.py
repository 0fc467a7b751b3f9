"""Segments (segmentación): saved criteria trees and their members.

:class:`SegmentService` saves criteria trees by name
(:class:`~crmkit.core.segments.Segment`), checks them against the
organization's fields and custom fields, and evaluates them in the store: in
memory on ``MemoryStore``, as one SQL query on ``SqlStore``.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import attrs

from crmkit.core import changes
from crmkit.core.contact_points import EmailAddress, PhoneNumber
from crmkit.core.entities import Organization
from crmkit.core.errors import NotFoundError, ValidationError
from crmkit.core.fields import to_enum
from crmkit.core.ids import OrganizationId, SegmentId, uuid7
from crmkit.core.interactions import Interaction
from crmkit.core.mail import CampaignEmail
from crmkit.core.opportunities import Opportunity
from crmkit.core.query import Contains, Eq, Filter, Has, In, Query, Range
from crmkit.core.segments import (
    And,
    Criteria,
    History,
    Not,
    OpenedEmail,
    Or,
    Segment,
    SegmentMode,
    check_criteria,
    evaluate,
)
from crmkit.services.base import (
    UNSET,
    Event,
    Unset,
    _check_uuid,
    _check_version,
    _expect,
    _Service,
)
from crmkit.stores.base import UnitOfWork

if TYPE_CHECKING:
    pass

__all__ = ["SegmentRef", "SegmentService"]

#: What a segment argument accepts: the record, its id or its name.
SegmentRef = Segment | SegmentId | str


class SegmentService(_Service[Segment, SegmentId]):
    """Saved segments of organizations: criteria trees, members, snapshots.

    Criteria name organization fields as ``find`` does, friendly references
    included (``Eq("market", "retail")``, ``In("zone", ["norte", "sur"])``),
    and custom fields as ``custom.<key>``; they are resolved and checked when
    the segment is saved, and stored with ids.
    """

    _cls = Segment

    # --------------------------------------------------------------- writes
    def create(
        self,
        *,
        name: str,
        criteria: Criteria,
        mode: SegmentMode | str = SegmentMode.DYNAMIC,
        description: str | None = None,
        external_ref: str | None = None,
    ) -> Segment:
        """Save a criteria tree by name.

        A ``static`` segment takes its snapshot now (its members are those
        that meet the criteria at this moment); a ``dynamic`` one is evaluated
        whenever it is read.

        Raises:
            ValidationError: a bad tree (``criteria...`` path, e.g.
                ``criteria.parts[0].field``), an unknown mode.
            DuplicateError: the name or ``external_ref`` is taken.
        """
        chosen = to_enum(SegmentMode, mode, "mode")

        def run(uow: UnitOfWork, events: list[Event]) -> Segment:
            tree = self._resolve(uow, criteria)
            now = self._crm.now()
            values: dict[str, Any] = {
                "name": name,
                "criteria": tree,
                "mode": chosen,
                "description": description,
                "external_ref": external_ref,
            }
            if chosen is SegmentMode.STATIC:
                values["members"] = self._evaluate(uow, tree, now)
                values["snapshot_at"] = now
            segment, event = changes.create(Segment, id=uuid7(), now=now, **values)
            self._repo(uow).add(self._validated(segment, None))
            self._crm._record(uow, events, event)
            return segment

        return self._crm._write(run)

    def update(
        self,
        id: SegmentId,
        *,
        expected_version: int,
        name: str | Unset = UNSET,
        criteria: Criteria | Unset = UNSET,
        mode: SegmentMode | str | Unset = UNSET,
        description: str | Unset | None = UNSET,
        external_ref: str | Unset | None = UNSET,
    ) -> Segment:
        """Change a segment.  A static segment keeps its snapshot until :meth:`snapshot`.

        Raises:
            NotFoundError: no such segment.
            ConcurrencyError: it changed since ``expected_version``.
            ValidationError: a bad tree or mode.
        """
        _check_uuid(id, "id")
        _check_version(expected_version)
        values: dict[str, Any] = {
            "name": name,
            "mode": mode if isinstance(mode, Unset) else to_enum(SegmentMode, mode, "mode"),
            "description": description,
            "external_ref": external_ref,
        }
        values = {k: v for k, v in values.items() if v is not UNSET}

        def run(uow: UnitOfWork, events: list[Event]) -> Segment:
            if not isinstance(criteria, Unset):
                values["criteria"] = self._resolve(uow, criteria)
            repo = self._repo(uow)
            current = repo.get(id)
            _expect(current, expected_version)
            segment, event = changes.update(current, values, now=self._crm.now())
            if event is not None:
                repo.update(self._validated(segment, current), expected_version=expected_version)
                self._crm._record(uow, events, event)
            return segment

        return self._crm._write(run)

    def snapshot(self, segment: SegmentRef, *, as_of: datetime | None = None) -> Segment:
        """Freeze the members that meet the criteria now: the segment becomes static.

        Args:
            segment: the segment (record, id or name).
            as_of: the moment history criteria count back from (default now).

        Raises:
            NotFoundError: no such segment.
        """
        when = self._as_of(as_of)

        def run(uow: UnitOfWork, events: list[Event]) -> Segment:
            current = self._get(uow, segment)
            members = self._evaluate(uow, current.criteria, when)
            values = {"members": members, "snapshot_at": when, "mode": SegmentMode.STATIC}
            new, event = changes.update(current, values, now=self._crm.now())
            if event is not None:
                self._repo(uow).update(
                    self._validated(new, current), expected_version=current.version
                )
                self._crm._record(uow, events, event)
            return new

        return self._crm._write(run)

    # ---------------------------------------------------------------- reads
    def get_by_name(self, name: str) -> Segment:
        """The segment called ``name``.

        Raises:
            NotFoundError: there is none.
        """
        return self._crm._read(lambda uow: self._get(uow, name))

    def member_ids(
        self, segment: SegmentRef, *, as_of: datetime | None = None
    ) -> list[OrganizationId]:
        """The ids of the segment's organizations, in id (creation) order.

        A dynamic segment is evaluated now (or ``as_of``); a static one gives
        the members of its snapshot.

        Raises:
            NotFoundError: no such segment.
        """
        when = self._as_of(as_of)
        return self._crm._read(lambda uow: self._members(uow, self._get(uow, segment), when))

    def members(self, segment: SegmentRef, *, as_of: datetime | None = None) -> list[Organization]:
        """The segment's organizations, in id (creation) order (see :meth:`member_ids`)."""
        when = self._as_of(as_of)

        def read(uow: UnitOfWork) -> list[Organization]:
            ids = self._members(uow, self._get(uow, segment), when)
            found = uow.repository(Organization).get_many(ids)
            return [found[i] for i in ids if i in found]

        return self._crm._read(read)

    def member_count(self, segment: SegmentRef, *, as_of: datetime | None = None) -> int:
        """How many organizations the segment holds (see :meth:`member_ids`)."""
        return len(self.member_ids(segment, as_of=as_of))

    def preview(self, criteria: Criteria, *, as_of: datetime | None = None) -> list[OrganizationId]:
        """The ids of the organizations meeting an unsaved criteria tree, in id order.

        Raises:
            ValidationError: a bad tree.
        """
        when = self._as_of(as_of)
        return self._crm._read(lambda uow: self._evaluate(uow, self._resolve(uow, criteria), when))

    # -------------------------------------------------------------- helpers
    def _as_of(self, as_of: datetime | None) -> datetime:
        if as_of is None:
            return self._crm.now()
        if not isinstance(as_of, datetime) or as_of.utcoffset() is None:
            raise ValidationError("as_of", "must be a timezone-aware datetime", value=as_of)
        return as_of

    def _get(self, uow: UnitOfWork, segment: object) -> Segment:
        repo = self._repo(uow)
        if isinstance(segment, Segment):
            return repo.get(segment.id)
        if isinstance(segment, str):
            found = repo.get_by("name", segment)
            if found is None:
                raise NotFoundError(Segment.ENTITY, segment)
            return found
        _check_uuid(segment, "segment")
        return repo.get(cast(SegmentId, segment))

    def _members(self, uow: UnitOfWork, segment: Segment, as_of: datetime) -> list[OrganizationId]:
        if segment.mode is SegmentMode.STATIC:
            return list(segment.members)
        return self._evaluate(uow, segment.criteria, as_of)

    def _kinds(self) -> dict[str, Any]:
        return self._crm.custom_fields.kinds(Organization.ENTITY)

    def _resolve(self, uow: UnitOfWork, criteria: object) -> Criteria:
        """The tree with friendly references resolved to ids and plain values; checked.

        Raises:
            ValidationError: ``field`` is the path of the node at fault
                (``criteria.parts[1].field``).
        """
        organizations = self._crm.organizations

        def walk(node: object, path: str) -> Any:
            if isinstance(node, Eq | In | Range | Contains | Has):
                try:
                    resolved = organizations._resolved(uow, Query(filters=(node,)))
                except ValidationError as error:
                    raise ValidationError(
                        f"{path}.field", error.reason, code=error.code, value=error.value
                    ) from None
                return _plain_filter(resolved.filters[0])
            if isinstance(node, And):
                return And(*(walk(p, f"{path}.parts[{i}]") for i, p in enumerate(node.parts)))
            if isinstance(node, Or):
                return Or(*(walk(p, f"{path}.parts[{i}]") for i, p in enumerate(node.parts)))
            if isinstance(node, Not):
                return Not(cast(Criteria, walk(node.part, f"{path}.part")))
            if isinstance(node, OpenedEmail):
                return attrs.evolve(node, campaign=self._campaign_id(uow, node.campaign, path))
            return node  # history criteria and anything else: checked below

        resolved = walk(criteria, "criteria")
        check_criteria(resolved, self._kinds())
        return cast(Criteria, resolved)

    def _campaign_id(self, uow: UnitOfWork, campaign: object, path: str) -> Any:
        """A campaign record or name as its id (ids and anything else: checked later)."""
        from crmkit.core.campaigns import Campaign

        if isinstance(campaign, Campaign):
            return campaign.id
        if isinstance(campaign, str):
            found = uow.repository(Campaign).get_by("name", campaign)
            if found is None:
                raise ValidationError(
                    f"{path}.campaign",
                    "there is no campaign with that name",
                    code="reference",
                    value=campaign,
                )
            return found.id
        return campaign

    def _evaluate(
        self, uow: UnitOfWork, criteria: Criteria, as_of: datetime
    ) -> list[OrganizationId]:
        kinds = tuple(self._kinds().items())
        segment = getattr(uow, "segment", None)
        if segment is not None:  # the store evaluates it (SQL on SqlStore)
            return cast(list[OrganizationId], segment(criteria, as_of=as_of, custom_kinds=kinds))
        every = Query(archived=None)
        history = History.of(
            uow.repository(Interaction).find(every),
            uow.repository(Opportunity).find(every),
            uow.repository(CampaignEmail).find(every),
        )
        organizations = uow.repository(Organization).find(Query())
        return evaluate(organizations, criteria, as_of=as_of, history=history, kinds=dict(kinds))


def _plain(value: object) -> object:
    """A filter value as stored: enums, e-mails and phones as their text."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, EmailAddress):
        return value.value
    if isinstance(value, PhoneNumber):
        return value.e164
    return value


def _plain_filter(f: Filter) -> Filter:
    if isinstance(f, In):
        return In(f.field, tuple(_plain(v) for v in f.values))
    if isinstance(f, Range):
        return Range(f.field, _plain(f.low), _plain(f.high), f.include_high)
    if isinstance(f, Eq):
        return Eq(f.field, _plain(f.value))
    if isinstance(f, Has):
        return Has(f.field, _plain(f.value))
    return f
