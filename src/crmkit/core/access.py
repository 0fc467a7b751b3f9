"""Access control: who may see and change which records (pure rules).

A :class:`Principal` is the user a scoped CRM acts for (``crm.as_user(user)``):
role, the teams' members and the zones (security groups).  The
:class:`Policy` turns the rights table (:data:`DEFAULT_RIGHTS`, plain data)
into *store restrictions*: a :class:`~crmkit.core.query.Restriction` that the
stores compile into the query (a WHERE clause and subqueries), so that no
path loads every record and filters afterwards.

The same restriction decides one record (:meth:`Policy.can`), so reads and
writes cannot disagree.

.. versionadded:: 0.1
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final
from uuid import UUID

from attrs import field, frozen

from crmkit.core.entities import Contact, Entity, Organization, Role
from crmkit.core.ids import UserId
from crmkit.core.interactions import Interaction
from crmkit.core.leads import Lead
from crmkit.core.opportunities import Opportunity
from crmkit.core.query import AnyOf, Eq, In, Lookup, Restriction, Via, restriction_matches
from crmkit.core.targets import SalesTarget

__all__ = [
    "COVERED",
    "DEFAULT_ELEVATE",
    "DEFAULT_PROTECTED",
    "DEFAULT_RIGHTS",
    "OWNER_FIELD",
    "Action",
    "Policy",
    "Principal",
    "Reach",
    "Right",
]


class Action(enum.Enum):
    """What a principal does to a record."""

    READ = "read"  #: get, find, count
    CREATE = "create"  #: add a new record
    UPDATE = "update"  #: change fields, move an opportunity through its pipeline
    ARCHIVE = "archive"  #: archive or restore


class Reach(enum.Enum):
    """Which records of an entity type a right covers."""

    ALL = "all"  #: every record
    OWN = "own"  #: records the principal owns (``owner_id``)
    TEAM = "team"  #: records owned by a member of one of the principal's teams
    ZONE = "zone"  #: records in one of the principal's zones (via the organization)


def _reaches(values: Iterable[Reach]) -> frozenset[Reach]:
    return frozenset(values)


@frozen
class Right:
    """What a role may do with one entity type: the records it reads, and writes."""

    read: frozenset[Reach] = field(converter=_reaches)
    write: frozenset[Reach] = field(converter=_reaches)


_ALL: Final = Right({Reach.ALL}, {Reach.ALL})
_MINE: Final = Right({Reach.OWN, Reach.ZONE}, {Reach.OWN})
_TEAM: Final = Right({Reach.OWN, Reach.TEAM, Reach.ZONE}, {Reach.OWN, Reach.TEAM, Reach.ZONE})
# sales targets are read in a scope (forecasts, attainment), never written there
_TARGETS_MINE: Final = Right({Reach.OWN, Reach.ZONE}, ())
_TARGETS_TEAM: Final = Right({Reach.OWN, Reach.TEAM, Reach.ZONE}, ())

#: The entity types access control covers (a scoped CRM exposes only their services).
COVERED: Final[tuple[type[Entity], ...]] = (
    Organization,
    Contact,
    Opportunity,
    Interaction,
    Lead,
    SalesTarget,
)

#: The default rights (the design's table).  A role absent from an entity's
#: row has no right on it; ADMIN is not listed: it may do everything.
DEFAULT_RIGHTS: Final[Mapping[Role, Mapping[str, Right]]] = {
    Role.MANAGER: {
        "organization": _ALL,
        "contact": _ALL,
        "opportunity": _TEAM,
        "interaction": _TEAM,
        "lead": _TEAM,
        "sales_target": _TARGETS_TEAM,
    },
    Role.CONTRIBUTOR: {
        "organization": _MINE,
        "contact": _MINE,
        "opportunity": _MINE,
        "interaction": _MINE,
        "lead": _MINE,
        "sales_target": _TARGETS_MINE,
    },
    Role.GUEST: {},
}

#: Fields a role may not change on records it may otherwise update.
DEFAULT_PROTECTED: Final[Mapping[Role, Mapping[str, frozenset[str]]]] = {
    Role.CONTRIBUTOR: {
        "organization": frozenset({"owner_id"}),
        "contact": frozenset({"owner_id"}),
        "opportunity": frozenset({"owner_id"}),
        "interaction": frozenset({"assignee_id"}),
        "lead": frozenset({"owner_id"}),
    },
}

#: The roles that may elevate to the system context by default.
DEFAULT_ELEVATE: Final[frozenset[Role]] = frozenset({Role.ADMIN})


def _roles(values: Iterable[Role]) -> frozenset[Role]:
    return frozenset(values)


#: The field naming a record's owner, when it is not ``owner_id``.
OWNER_FIELD: Final[Mapping[str, str]] = {"interaction": "assignee_id", "sales_target": "user_id"}

#: How each covered entity type reaches a zone: its own field, or its organization's.
_ZONE_PATH: Final[Mapping[str, str | None]] = {
    "organization": None,  # organizations.zone_id itself
    "contact": "organization_id",
    "opportunity": "organization_id",
    "interaction": "organization_id",
    "lead": "organization_id",
    "sales_target": None,  # a zone's target: sales_targets.zone_id itself
}


#: The field naming a record's team, for types a team owns (one of its teams' is the user's own).
_TEAM_FIELD: Final[Mapping[str, str]] = {"sales_target": "team_id"}


def _ids(values: Iterable[UUID]) -> frozenset[UUID]:
    return frozenset(values)


@frozen(kw_only=True)
class Principal:
    """Who a scoped CRM acts for, read from the store when the scope opens.

    Attributes:
        user_id: the user.
        role: the user's role.
        teammate_ids: every member of every team the user is in (the user included).
        zone_ids: the zones (security groups) the user is in.
        team_ids: the teams the user is in.
    """

    user_id: UserId
    role: Role
    teammate_ids: frozenset[UUID] = field(factory=frozenset, converter=_ids)
    zone_ids: frozenset[UUID] = field(factory=frozenset, converter=_ids)
    team_ids: frozenset[UUID] = field(factory=frozenset, converter=_ids)


def _sorted(values: frozenset[UUID]) -> tuple[UUID, ...]:
    return tuple(sorted(values))


@frozen(kw_only=True)
class Policy:
    """The rules: a rights table, fields protected per role, who may elevate.

    Replace or extend it with the ``crmkit_access_policy`` hook or
    ``crm.as_user(user, policy=...)``.
    """

    rights: Mapping[Role, Mapping[str, Right]] = DEFAULT_RIGHTS
    protected: Mapping[Role, Mapping[str, frozenset[str]]] = DEFAULT_PROTECTED
    #: the roles that may leave their scope for the system context
    #: (``scoped.elevated(reason=...)``, audited); an archived user is a guest
    elevate: frozenset[Role] = field(default=DEFAULT_ELEVATE, converter=_roles)

    def _reach(self, principal: Principal, entity: str, action: Action) -> frozenset[Reach]:
        if principal.role is Role.ADMIN:
            return frozenset({Reach.ALL})
        right = self.rights.get(principal.role, {}).get(entity)
        if right is None:
            return frozenset()
        return right.read if action is Action.READ else right.write

    def restriction(
        self, principal: Principal, cls: type[Entity], action: Action = Action.READ
    ) -> Restriction | None:
        """The records of ``cls`` the principal may ``action``, as a store restriction.

        ``None`` means every record; ``AnyOf(())`` means none.
        """
        reach = self._reach(principal, cls.ENTITY, action)
        if Reach.ALL in reach:
            return None
        parts: list[Restriction] = []
        owner = OWNER_FIELD.get(cls.ENTITY, "owner_id")
        if Reach.OWN in reach:
            parts.append(Eq(owner, principal.user_id))
            if cls.ENTITY in _TEAM_FIELD and principal.team_ids:  # a team's own record
                parts.append(In(_TEAM_FIELD[cls.ENTITY], _sorted(principal.team_ids)))
        if Reach.TEAM in reach and principal.teammate_ids:
            parts.append(In(owner, _sorted(principal.teammate_ids)))
        if Reach.ZONE in reach and principal.zone_ids and cls.ENTITY in _ZONE_PATH:
            zones = In("zone_id", _sorted(principal.zone_ids))
            path = _ZONE_PATH[cls.ENTITY]
            parts.append(zones if path is None else Via(path, Organization, zones))
        return AnyOf(parts)

    def visibility(self, principal: Principal, cls: type[Entity]) -> Restriction | None:
        """The records of ``cls`` the principal may see (``None``: all)."""
        return self.restriction(principal, cls, Action.READ)

    def can(
        self,
        principal: Principal,
        action: Action,
        record: Entity,
        lookup: Lookup,
        previous: Entity | None = None,
    ) -> bool:
        """Whether the principal may ``action`` ``record``.

        Args:
            principal: who acts.
            action: what they do.
            record: the record read, or as it would be written.
            lookup: reads related records (a contact's organization).
            previous: for an update or archive, the stored record: it must be
                writable too, and protected fields must keep their values.
        """
        cls = type(record)
        restrict = self.restriction(principal, cls, action)
        if not restriction_matches(record, restrict, lookup):
            return False
        if previous is None:
            return True
        if not restriction_matches(previous, restrict, lookup):
            return False
        protected = self.protected.get(principal.role, {}).get(cls.ENTITY, frozenset())
        return all(getattr(record, name) == getattr(previous, name) for name in protected)
