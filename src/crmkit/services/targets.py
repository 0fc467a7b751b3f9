"""Teams and sales targets: ``crm.teams`` and ``crm.targets``.

A team is a named group of users (a user may be in several teams); a sales
target is an amount to win in one period by a user, a team or a zone.  Both
are plain records written like the other masters: create, get, find, update,
archive and restore, audited and checked by plugins' validation hooks.
Attainment and the probability of reaching a target are computed by
``crm.forecast.attainment``.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import attrs

from crmkit.core.analytics import Period
from crmkit.core.entities import Entity, User, Zone
from crmkit.core.errors import NotFoundError, ValidationError
from crmkit.core.forecast import parse_period
from crmkit.core.ids import SalesTargetId, TeamId
from crmkit.core.money import Money
from crmkit.core.query import Eq, Query
from crmkit.core.targets import SalesTarget, Team
from crmkit.services.base import UNSET, Unset, UserRef, ZoneRef, _ref_id, _Service
from crmkit.stores.base import UnitOfWork

__all__ = ["SalesTargetRef", "SalesTargetService", "TeamRef", "TeamService"]

#: What a team argument accepts: the record, its id or its name.
TeamRef = Team | TeamId | str
#: What a target argument accepts: the record or its id.
SalesTargetRef = SalesTarget | SalesTargetId

_Resolver = Callable[[UnitOfWork, type[Entity], object, str], Any]


class TeamService(_Service[Team, TeamId]):
    """Teams (equipos): named groups of users; a user may be in several.

    Members are users (records or ids) that must exist.  Archiving a team
    keeps its targets and history.
    """

    _cls = Team

    def create(
        self,
        *,
        name: str,
        members: Iterable[UserRef] = (),
        description: str | None = None,
        external_ref: str | None = None,
    ) -> Team:
        """Add a team.

        Args:
            name: unique name.
            members: its users (records or ids), each once.
            description: what the team is for.
            external_ref: the host system's id for it.

        Raises:
            ValidationError: a bad name, a member that is no user (code
                ``reference``) or listed twice (code ``duplicate``).
            DuplicateError: the name or ``external_ref`` is taken.
        """
        return self._create(
            {
                "name": name,
                "members": members,
                "description": description,
                "external_ref": external_ref,
            }
        )

    def update(
        self,
        id: TeamId,
        *,
        expected_version: int,
        name: str | Unset = UNSET,
        members: Iterable[UserRef] | Unset = UNSET,
        description: str | Unset | None = UNSET,
        external_ref: str | Unset | None = UNSET,
    ) -> Team:
        """Change a team (``members`` replaces the whole list).

        Raises:
            NotFoundError: no such team.
            ConcurrencyError: it changed since ``expected_version``.
            ValidationError: invalid values.
        """
        return self._update(
            id,
            expected_version,
            {
                "name": name,
                "members": members,
                "description": description,
                "external_ref": external_ref,
            },
        )

    def get_by_name(self, name: str) -> Team:
        """The team called ``name``.

        Raises:
            NotFoundError: there is none.
        """
        found = self._crm._read(lambda uow: self._repo(uow).get_by("name", name))
        if found is None:
            raise NotFoundError(Team.ENTITY, name)
        return found

    def of_user(self, user: UserRef) -> list[Team]:
        """The teams (not archived) ``user`` is a member of, by name."""
        user_id = user.id if isinstance(user, User) else user
        return [t for t in self.find(order_by="name") if user_id in t.member_ids]

    def _prepare(
        self,
        uow: UnitOfWork,
        values: Mapping[str, Any],
        resolve: _Resolver | None = None,
    ) -> dict[str, Any]:
        fields = dict(values)
        if "members" in fields:
            members = fields.pop("members")
            if isinstance(members, str) or not isinstance(members, Iterable):
                raise ValidationError(
                    "members", "must be a list of users", code="type", value=members
                )
            fields["member_ids"] = tuple(
                _ref_id(uow, User, member, f"members[{i}]") for i, member in enumerate(members)
            )
        return super()._prepare(uow, fields, resolve)


def _team_id(uow: UnitOfWork, cls: type[Entity], value: object, name: str) -> Any:
    """A team by record, id or name; other references as usual."""
    if cls is Team and isinstance(value, str):
        found = uow.repository(Team).get_by("name", value)
        if found is None:
            raise ValidationError(
                name, "there is no team with that name", code="reference", value=value
            )
        return found.id
    return _ref_id(uow, cls, value, name)


class SalesTargetService(_Service[SalesTarget, SalesTargetId]):
    """Sales targets (objetivos comerciales): an amount to win in a period.

    A target belongs to exactly one of a user, a team or a zone, and names
    its period by a :class:`~crmkit.core.analytics.Period` or a label
    (``"2027-Q1"``, ``"2027-03"``, ``"2027"``; ``"FY2027-Q1"`` with a fiscal
    year that does not start in January).
    """

    _cls = SalesTarget
    _aliases: ClassVar[Mapping[str, tuple[str, type[Entity]]]] = {
        "user": ("user_id", User),
        "team": ("team_id", Team),
        "zone": ("zone_id", Zone),
    }

    def create(
        self,
        *,
        amount: Money,
        period: Period | str,
        user: UserRef | None = None,
        team: TeamRef | None = None,
        zone: ZoneRef | None = None,
        fiscal_start: int = 1,
        description: str | None = None,
        external_ref: str | None = None,
    ) -> SalesTarget:
        """Set a target.

        Args:
            amount: the won value to reach (more than zero).
            period: a ``Period`` or its label.
            user: a user's target (record or id).
            team: a team's target (record, id or name).
            zone: a zone's target (record, id or key); exactly one of
                ``user``, ``team`` and ``zone``.
            fiscal_start: the month the fiscal year starts, for quarter and
                year labels.
            description: a note.
            external_ref: the host system's id for it.

        Raises:
            ValidationError: none or several of user, team, zone (field
                ``scope``, code ``scope``); a bad period label (code
                ``period``); a non-positive amount; an unknown reference.
        """
        return self._create(
            {
                "amount": amount,
                "period": period,
                "fiscal_start": fiscal_start,
                "user": user,
                "team": team,
                "zone": zone,
                "description": description,
                "external_ref": external_ref,
            }
        )

    def update(
        self,
        id: SalesTargetId,
        *,
        expected_version: int,
        amount: Money | Unset = UNSET,
        description: str | Unset | None = UNSET,
        external_ref: str | Unset | None = UNSET,
    ) -> SalesTarget:
        """Change a target's amount or note (its owner and period are fixed).

        Raises:
            NotFoundError: no such target.
            ConcurrencyError: it changed since ``expected_version``.
            ValidationError: a non-positive amount.
        """
        return self._update(
            id,
            expected_version,
            {"amount": amount, "description": description, "external_ref": external_ref},
        )

    def for_period(self, period: Period | str, *, fiscal_start: int = 1) -> list[SalesTarget]:
        """The targets (not archived) of one period."""
        wanted = parse_period(period, fiscal_start=fiscal_start)
        found = self.find(period_kind=wanted.kind, period_start=wanted.start)
        return [t for t in found if t.period == wanted]

    def _creating(self, values: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(values)
        fiscal_start = values["fiscal_start"]
        period = parse_period(values.pop("period"), fiscal_start=fiscal_start)
        values["period_kind"] = period.kind
        values["period_start"] = period.start
        return values

    def _prepare(
        self,
        uow: UnitOfWork,
        values: Mapping[str, Any],
        resolve: _Resolver | None = None,
    ) -> dict[str, Any]:
        return super()._prepare(uow, values, resolve or _team_id)

    def _resolved(self, uow: UnitOfWork, query: Query) -> Query:
        """``find(team="Norte")``: a team name is resolved to its id first."""
        filters = tuple(
            Eq(f.field, _team_id(uow, Team, f.value, f.field))
            if isinstance(f, Eq) and f.field == "team" and isinstance(f.value, str)
            else f
            for f in query.filters
        )
        return super()._resolved(uow, attrs.evolve(query, filters=filters))
