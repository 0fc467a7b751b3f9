"""Teams and sales targets (equipos, objetivos comerciales).

A :class:`Team` is a named group of users.  A user may belong to several
teams (a rep in "Norte" and in "Grandes cuentas"); a team's won value counts
the deals its members own, so a deal owned by a user in two teams counts for
both.  Access control will build on teams later; for now they group targets
and reports.

A :class:`SalesTarget` (objetivo comercial) is an amount to win in one
:class:`~crmkit.core.analytics.Period` (a month, quarter or year, always with
its year, the fiscal year start honoured) by exactly one of a user, a team or
a zone.  Attainment and the probability of reaching it are computed by
:func:`crmkit.core.forecast.attainment`.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Any, ClassVar
from uuid import UUID

import attrs
from attrs import field, frozen

from crmkit.core.analytics import Period, PeriodKind
from crmkit.core.entities import _BASE_FIELDS, Entity, FieldKind, User, Zone
from crmkit.core.errors import ValidationError
from crmkit.core.fields import enum_field, required_id, text, tuple_field
from crmkit.core.ids import SalesTargetId, TeamId, UserId, ZoneId
from crmkit.core.money import Money

__all__ = ["SalesTarget", "TargetScope", "Team"]

#: The most members a team may have.
MAX_MEMBERS = 10_000


def _member(value: object, path: str) -> UserId:
    if not isinstance(value, UUID):
        raise ValidationError(path, "must be a user id (UUID)", code="type", value=value)
    return value  # type: ignore[return-value]


@frozen(kw_only=True)
class Team(Entity):
    """A group of users (equipo); a user may be in several teams.

    Attributes:
        name: unique name.
        member_ids: the users in the team, in the order given, each once.
        description: what the team is for.
    """

    ENTITY: ClassVar[str] = "team"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {**_BASE_FIELDS, "name": FieldKind.TEXT}
    UNIQUE: ClassVar[tuple[str, ...]] = ("external_ref", "name")

    id: TeamId = required_id()
    name: str = text("name", required=True, max_length=200)
    member_ids: tuple[UserId, ...] = tuple_field(_member, "member_ids", max_items=MAX_MEMBERS)
    description: str | None = text("description", max_length=2000)

    def __attrs_post_init__(self) -> None:
        if len(set(self.member_ids)) != len(self.member_ids):
            raise ValidationError(
                "member_ids", "lists a user more than once", code="duplicate", value=self.member_ids
            )


class TargetScope(enum.Enum):
    """Whose target a :class:`SalesTarget` is."""

    USER = "user"  #: the deals the user owns
    TEAM = "team"  #: the deals owned by the team's members
    ZONE = "zone"  #: the deals of organizations in the zone


def _positive_money(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Money):
        raise ValidationError("amount", "must be Money", code="type", value=value)
    if value.amount <= 0:
        raise ValidationError("amount", "must be more than zero", code="range", value=value)


def _month(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 12:
        raise ValidationError(
            "fiscal_start", "must be a month number, 1-12", code="range", value=value
        )


def _day(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, date):
        raise ValidationError("period_start", "must be a date", code="type", value=value)


@frozen(kw_only=True)
class SalesTarget(Entity):
    """An amount to win in one period (objetivo comercial) by a user, a team or a zone.

    Exactly one of ``user_id``, ``team_id`` and ``zone_id`` is set.  The
    period is stored as its kind, its first day and the fiscal year start;
    :attr:`period` rebuilds the :class:`~crmkit.core.analytics.Period`.

    Attributes:
        user_id, team_id, zone_id: whose target it is (one of them).
        period_kind: month, quarter or year.
        period_start: the period's first day (with ``fiscal_start``).
        fiscal_start: the month the fiscal year starts (1-12).
        amount: the won value to reach, more than zero.
        description: a note.

    Raises:
        ValidationError: none or several of user, team and zone (field
            ``scope``, code ``scope``); ``period_start`` not the first day of
            a period of its kind (code ``period``); a non-positive amount.
    """

    ENTITY: ClassVar[str] = "sales_target"
    QUERYABLE: ClassVar[dict[str, FieldKind]] = {
        **_BASE_FIELDS,
        "user_id": FieldKind.ID,
        "team_id": FieldKind.ID,
        "zone_id": FieldKind.ID,
        "period_kind": FieldKind.ENUM,
        "period_start": FieldKind.DATE,
        "amount": FieldKind.MONEY,
    }

    id: SalesTargetId = required_id()
    user_id: UserId | None = field(default=None)
    team_id: TeamId | None = field(default=None)
    zone_id: ZoneId | None = field(default=None)
    period_kind: PeriodKind = enum_field(PeriodKind, "period_kind")
    period_start: date = field(validator=_day)
    fiscal_start: int = field(default=1, validator=_month)
    amount: Money = field(validator=_positive_money)
    description: str | None = text("description", max_length=2000)

    def __attrs_post_init__(self) -> None:
        set_ = [n for n in ("user_id", "team_id", "zone_id") if getattr(self, n) is not None]
        if len(set_) != 1:
            raise ValidationError(
                "scope",
                "a target belongs to exactly one of a user, a team or a zone",
                code="scope",
                value=tuple(set_),
            )
        for name in set_:
            if not isinstance(getattr(self, name), UUID):
                raise ValidationError(
                    name, "must be a UUID", code="type", value=getattr(self, name)
                )
        period = self.period
        if period.start != self.period_start:
            raise ValidationError(
                "period_start",
                f"is not the first day of a {self.period_kind.value} "
                f"(that one starts on {period.start.isoformat()})",
                code="period",
                value=self.period_start,
            )

    @property
    def period(self) -> Period:
        """The period the target is for."""
        return Period.containing(
            self.period_start, self.period_kind, fiscal_start=self.fiscal_start
        )

    @property
    def scope(self) -> TargetScope:
        """Whether it is a user's, a team's or a zone's target."""
        if self.user_id is not None:
            return TargetScope.USER
        if self.team_id is not None:
            return TargetScope.TEAM
        return TargetScope.ZONE


SalesTarget.REFERENCES = {"user_id": User, "team_id": Team, "zone_id": Zone}
