"""Segments (segmentación): saved, typed criteria trees over organizations.

A criteria tree combines the typed filters of :mod:`crmkit.core.query`
(:class:`~crmkit.Eq`, :class:`~crmkit.In`, :class:`~crmkit.Range`,
:class:`~crmkit.Contains`, :class:`~crmkit.Has`, over an organization's own
fields and its custom fields ``custom.<key>``) with :class:`And`, :class:`Or`
and :class:`Not`, and with criteria over the organization's history:

* :class:`NoInteraction` - no interaction done in the last N days;
* :class:`WonValue` - won opportunities closed in a period worth at least X;
* :class:`OpenOpportunity` - an open opportunity in stage S;
* :class:`OpenedEmail` - a contact opened an e-mail of campaign X (in a period).

The functions here are the reference semantics: :func:`evaluate` over
organizations and a :class:`History` of facts.  ``SqlStore`` pushes the same
tree down to SQL and must return the same members; a property test compares
them on random trees.

A :class:`Segment` saves a tree by name; a dynamic segment is evaluated each
time it is read, a static one keeps the members of its last snapshot.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Final, Union, cast
from uuid import UUID

import attrs
from attrs import field, frozen

from crmkit.core.entities import _BASE_FIELDS, Entity, FieldKind, Organization
from crmkit.core.errors import ValidationError
from crmkit.core.fields import (
    enum_field,
    in_utc_range,
    optional_datetime,
    required_id,
    text,
)
from crmkit.core.ids import CampaignId, OrganizationId, SegmentId
from crmkit.core.money import Money
from crmkit.core.query import (
    Contains,
    Eq,
    Filter,
    Has,
    In,
    Query,
    Range,
    check_query,
    matches,
)

if TYPE_CHECKING:
    from crmkit.core.interactions import Interaction
    from crmkit.core.mail import CampaignEmail
    from crmkit.core.opportunities import Opportunity

__all__ = [
    "And",
    "Criteria",
    "History",
    "NoInteraction",
    "Not",
    "OpenOpportunity",
    "OpenedEmail",
    "Or",
    "Segment",
    "SegmentMode",
    "WonValue",
    "check_criteria",
    "evaluate",
    "filters_of",
    "map_filters",
]

#: How deep a criteria tree may nest (a guard against runaway recursion).
MAX_DEPTH: Final = 32
#: At most this many nodes in one tree.
MAX_NODES: Final = 1000
#: The longest look-back :class:`NoInteraction` accepts, in days.
MAX_DAYS: Final = 36_600


def _parts(values: tuple[Criteria, ...]) -> tuple[Criteria, ...]:
    return tuple(values)


@frozen(init=False)
class And:
    """Every part holds (no parts: always true)."""

    parts: tuple[Criteria, ...]

    def __init__(self, *parts: Criteria) -> None:
        object.__setattr__(self, "parts", _parts(parts))


@frozen(init=False)
class Or:
    """At least one part holds (no parts: never true)."""

    parts: tuple[Criteria, ...]

    def __init__(self, *parts: Criteria) -> None:
        object.__setattr__(self, "parts", _parts(parts))


@frozen
class Not:
    """``part`` does not hold."""

    part: Criteria


@frozen
class NoInteraction:
    """No interaction done with the organization in the last ``days`` days.

    Counts interactions with status ``done`` whose ``occurred_at`` falls from
    ``as_of - days`` to ``as_of`` (both included); archived ones are ignored.
    """

    days: int


@frozen
class WonValue:
    """Opportunities won in ``[start, end)`` add up to at least ``at_least``.

    Sums the ``amount`` of the organization's won opportunities (archived
    ones ignored) in ``at_least``'s currency whose ``closed_at`` falls in the
    period; amounts in other currencies do not count.
    """

    at_least: Money
    start: datetime
    end: datetime


@frozen
class OpenOpportunity:
    """The organization has an open opportunity in ``stage`` (of ``pipeline``, if given).

    Open means status ``open`` (not won, lost or on hold); archived ones are ignored.
    """

    stage: str
    pipeline: str | None = None


@frozen
class OpenedEmail:
    """A contact of the organization opened an e-mail of ``campaign``.

    Reads the campaign's e-mail records sent on behalf of the organization
    (their ``organization_id``, the campaign member) whose ``opened_at``
    falls in ``[start, end)`` (either bound may be left open); archived
    records are ignored.  ``campaign`` is the campaign's id; the segments
    service also takes its name (or record) and saves the id.
    """

    campaign: CampaignId | str
    start: datetime | None = None
    end: datetime | None = None


#: A criteria tree: a typed filter, a history criterion, or And / Or / Not of trees.
Criteria = Union[  # noqa: UP007 - a runtime alias the converter and the schema read
    Eq,
    In,
    Range,
    Contains,
    Has,
    And,
    Or,
    Not,
    NoInteraction,
    WonValue,
    OpenOpportunity,
    OpenedEmail,
]

#: The node types of a criteria tree.
CRITERIA_TYPES: Final = (
    Eq,
    In,
    Range,
    Contains,
    Has,
    And,
    Or,
    Not,
    NoInteraction,
    WonValue,
    OpenOpportunity,
    OpenedEmail,
)

_FILTERS: Final = (Eq, In, Range, Contains, Has)


# ------------------------------------------------------------------ checking


def check_criteria(criteria: object, kinds: Mapping[str, FieldKind]) -> None:
    """Check a criteria tree: node types, fields, value types, limits.

    Args:
        criteria: the tree.
        kinds: the kinds of the organization custom fields it may name
            (``"custom.tier"``).

    Raises:
        ValidationError: ``field`` is the path of the offending node
            (``"criteria.parts[1].field"``).
    """
    count = [0]
    _check(criteria, kinds, "criteria", 0, count)


def _check(
    node: object, kinds: Mapping[str, FieldKind], path: str, depth: int, n: list[int]
) -> None:
    n[0] += 1
    if n[0] > MAX_NODES:
        raise ValidationError(path, f"a tree may have at most {MAX_NODES} nodes", code="too_large")
    if depth > MAX_DEPTH:
        raise ValidationError(path, f"nests deeper than {MAX_DEPTH}", code="too_deep")
    if isinstance(node, _FILTERS):
        try:
            check_query(Organization, Query(filters=(node,)), kinds)
        except ValidationError as error:
            raise ValidationError(
                f"{path}.field", error.reason, code=error.code, value=error.value
            ) from None
    elif isinstance(node, And | Or):
        for i, part in enumerate(node.parts):
            _check(part, kinds, f"{path}.parts[{i}]", depth + 1, n)
    elif isinstance(node, Not):
        _check(node.part, kinds, f"{path}.part", depth + 1, n)
    elif isinstance(node, NoInteraction):
        days = node.days
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_DAYS:
            raise ValidationError(
                f"{path}.days", f"must be an integer from 0 to {MAX_DAYS}", value=days
            )
    elif isinstance(node, WonValue):
        if not isinstance(node.at_least, Money):
            raise ValidationError(
                f"{path}.at_least", "must be Money", code="type", value=node.at_least
            )
        for name in ("start", "end"):
            value = getattr(node, name)
            if not isinstance(value, datetime) or value.utcoffset() is None:
                raise ValidationError(
                    f"{path}.{name}", "must be a timezone-aware datetime", code="type", value=value
                )
            if not in_utc_range(value):
                raise ValidationError(
                    f"{path}.{name}", "is out of range in UTC", code="out_of_range", value=value
                )
        if node.end <= node.start:
            raise ValidationError(
                f"{path}.end", "must be after start", code="range", value=node.end
            )
    elif isinstance(node, OpenOpportunity):
        if not isinstance(node.stage, str) or not node.stage:
            raise ValidationError(
                f"{path}.stage", "must be a stage key", code="type", value=node.stage
            )
        if node.pipeline is not None and (not isinstance(node.pipeline, str) or not node.pipeline):
            raise ValidationError(
                f"{path}.pipeline", "must be a pipeline key", code="type", value=node.pipeline
            )
    elif isinstance(node, OpenedEmail):
        _check_opened(node, path)
    else:
        raise ValidationError(
            path,
            "must be a filter (Eq, In, Range, Contains, Has), And, Or, Not, "
            "NoInteraction, WonValue, OpenOpportunity or OpenedEmail",
            code="type",
            value=node,
        )


def _check_opened(node: OpenedEmail, path: str) -> None:
    if not isinstance(node.campaign, UUID):
        raise ValidationError(
            f"{path}.campaign", "must be a campaign id", code="type", value=node.campaign
        )
    for name in ("start", "end"):
        value = getattr(node, name)
        if value is None:
            continue
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValidationError(
                f"{path}.{name}", "must be a timezone-aware datetime", code="type", value=value
            )
        if not in_utc_range(value):
            raise ValidationError(
                f"{path}.{name}", "is out of range in UTC", code="out_of_range", value=value
            )
    if node.start is not None and node.end is not None and node.end <= node.start:
        raise ValidationError(f"{path}.end", "must be after start", code="range", value=node.end)


def filters_of(criteria: Criteria) -> list[Filter]:
    """Every typed filter in the tree, depth first."""
    found: list[Filter] = []

    def walk(node: Criteria) -> None:
        if isinstance(node, _FILTERS):
            found.append(node)
        elif isinstance(node, And | Or):
            for part in node.parts:
                walk(part)
        elif isinstance(node, Not):
            walk(node.part)

    walk(criteria)
    return found


def map_filters(criteria: Criteria, change: Any) -> Criteria:
    """The tree with every typed filter ``f`` replaced by ``change(f)``."""
    if isinstance(criteria, _FILTERS):
        return change(criteria)  # type: ignore[no-any-return]
    if isinstance(criteria, And):
        return And(*(map_filters(p, change) for p in criteria.parts))
    if isinstance(criteria, Or):
        return Or(*(map_filters(p, change) for p in criteria.parts))
    if isinstance(criteria, Not):
        return Not(map_filters(criteria.part, change))
    return criteria


# ---------------------------------------------------------------- evaluation


@frozen
class History:
    """What the history criteria read about each organization.

    Attributes:
        done: when each organization's done interactions occurred.
        won: (amount, closed at) of each organization's won opportunities.
        open_stages: (pipeline, stage) of each organization's open opportunities.
        opened: (campaign, opened at) of the campaign e-mails each organization's
            contacts opened.
    """

    done: Mapping[OrganizationId, tuple[datetime, ...]] = attrs.Factory(dict)
    won: Mapping[OrganizationId, tuple[tuple[Money, datetime], ...]] = attrs.Factory(dict)
    open_stages: Mapping[OrganizationId, frozenset[tuple[str, str]]] = attrs.Factory(dict)
    opened: Mapping[OrganizationId, tuple[tuple[CampaignId, datetime], ...]] = attrs.Factory(dict)

    @classmethod
    def of(
        cls,
        interactions: Iterable[Interaction],
        opportunities: Iterable[Opportunity],
        emails: Iterable[CampaignEmail] = (),
    ) -> History:
        """The facts of these interactions, opportunities and e-mails (archived ones skipped)."""
        done: dict[OrganizationId, list[datetime]] = {}
        for i in interactions:
            if (
                not i.archived
                and i.organization_id is not None
                and i.status.value == _DONE
                and i.occurred_at is not None
            ):
                done.setdefault(i.organization_id, []).append(i.occurred_at)
        won: dict[OrganizationId, list[tuple[Money, datetime]]] = {}
        open_stages: dict[OrganizationId, set[tuple[str, str]]] = {}
        for o in opportunities:
            if o.archived or o.organization_id is None:
                continue
            if o.status.value == _WON and o.amount is not None and o.closed_at is not None:
                won.setdefault(o.organization_id, []).append((o.amount, o.closed_at))
            elif o.status.value == _OPEN:
                open_stages.setdefault(o.organization_id, set()).add((o.pipeline, o.stage))
        opened: dict[OrganizationId, list[tuple[CampaignId, datetime]]] = {}
        for e in emails:
            if not e.archived and e.organization_id is not None and e.opened_at is not None:
                opened.setdefault(e.organization_id, []).append((e.campaign_id, e.opened_at))
        return cls(
            {k: tuple(v) for k, v in done.items()},
            {k: tuple(v) for k, v in won.items()},
            {k: frozenset(v) for k, v in open_stages.items()},
            {k: tuple(v) for k, v in opened.items()},
        )


_DONE: Final = "done"  # InteractionStatus.DONE
_WON: Final = "won"  # StageKind.WON
_OPEN: Final = "open"  # StageKind.OPEN


def holds(
    organization: Organization,
    criteria: Criteria,
    *,
    as_of: datetime,
    history: History,
    kinds: Mapping[str, FieldKind] | None = None,
) -> bool:
    """Whether ``organization`` meets ``criteria`` at ``as_of`` (archived or not)."""
    custom = tuple((kinds or {}).items())
    return _holds(organization, criteria, as_of, history, custom)


def _holds(
    org: Organization,
    node: Criteria,
    as_of: datetime,
    history: History,
    kinds: tuple[tuple[str, FieldKind], ...],
) -> bool:
    if isinstance(node, _FILTERS):
        return matches(org, Query(filters=(node,), archived=None, custom_kinds=kinds))
    if isinstance(node, And):
        return all(_holds(org, p, as_of, history, kinds) for p in node.parts)
    if isinstance(node, Or):
        return any(_holds(org, p, as_of, history, kinds) for p in node.parts)
    if isinstance(node, Not):
        return not _holds(org, node.part, as_of, history, kinds)
    if isinstance(node, NoInteraction):
        since = as_of - timedelta(days=node.days)
        return not any(since <= at <= as_of for at in history.done.get(org.id, ()))
    if isinstance(node, WonValue):
        total = Decimal(0)
        for amount, closed in history.won.get(org.id, ()):
            if amount.currency == node.at_least.currency and node.start <= closed < node.end:
                total += amount.amount
        return total >= node.at_least.amount
    if isinstance(node, OpenedEmail):
        return any(
            campaign == node.campaign
            and (node.start is None or node.start <= at)
            and (node.end is None or at < node.end)
            for campaign, at in history.opened.get(org.id, ())
        )
    assert isinstance(node, OpenOpportunity)
    return any(
        stage == node.stage and (node.pipeline is None or pipeline == node.pipeline)
        for pipeline, stage in history.open_stages.get(org.id, ())
    )


def evaluate(
    organizations: Iterable[Organization],
    criteria: Criteria,
    *,
    as_of: datetime,
    history: History,
    kinds: Mapping[str, FieldKind] | None = None,
) -> list[OrganizationId]:
    """The ids of the organizations (not archived) meeting ``criteria``, in id order."""
    custom = tuple((kinds or {}).items())
    return sorted(
        o.id
        for o in organizations
        if not o.archived and _holds(o, criteria, as_of, history, custom)
    )


# ------------------------------------------------------------------ segments


class SegmentMode(enum.Enum):
    """Whether a segment's members are computed when read or kept from a snapshot."""

    DYNAMIC = "dynamic"  #: evaluated each time it is read
    STATIC = "static"  #: the members of its last snapshot


def _criteria(value: object) -> Criteria:
    if not isinstance(value, CRITERIA_TYPES):
        raise ValidationError("criteria", "must be a criteria tree", code="type", value=value)
    return value


def _members(value: object) -> tuple[OrganizationId, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValidationError("members", "must be a list of ids", code="type", value=value)
    items = tuple(value)
    for i, item in enumerate(items):
        if not isinstance(item, UUID):
            raise ValidationError(f"members[{i}]", "must be a UUID", code="type", value=item)
    return cast(tuple[OrganizationId, ...], items)


@frozen(kw_only=True)
class Segment(Entity):
    """A saved criteria tree over organizations (segmentación).

    A ``dynamic`` segment's members are whoever meets the criteria when it is
    read; a ``static`` one keeps ``members``, the ids that met them at
    ``snapshot_at`` (refreshed by a new snapshot).
    """

    ENTITY: ClassVar[str] = "segment"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "name": FieldKind.TEXT,
        "mode": FieldKind.ENUM,
        "snapshot_at": FieldKind.DATETIME,
    }
    UNIQUE: ClassVar[tuple[str, ...]] = ("external_ref", "name")

    id: SegmentId = required_id()
    name: str = text("name", required=True, max_length=200)
    description: str | None = text("description", max_length=2000)
    criteria: Criteria = field(converter=_criteria)
    mode: SegmentMode = enum_field(SegmentMode, "mode", SegmentMode.DYNAMIC)
    members: tuple[OrganizationId, ...] = field(default=(), converter=_members)
    snapshot_at: datetime | None = optional_datetime()
