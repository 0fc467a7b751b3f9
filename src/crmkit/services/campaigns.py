"""Campaigns (campañas): from a segment to planned actions to ROI.

:class:`CampaignService` creates campaigns with a budget and a target
segment, launches them (the segment's members are snapshotted onto the
campaign), plans the actions they generate (one planned interaction per
member, assigned round-robin, by zone or to each organization's owner), and
computes their results from the leads and opportunities attributed to them.

.. versionadded:: 0.1
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from crmkit.core import changes
from crmkit.core.campaigns import (
    Campaign,
    CampaignKind,
    CampaignResults,
    CampaignStatus,
    check_move,
    results,
)
from crmkit.core.entities import Entity, Organization, User, Zone
from crmkit.core.errors import NotFoundError, ValidationError
from crmkit.core.fields import to_enum
from crmkit.core.ids import CampaignId, OrganizationId, UserId, uuid7
from crmkit.core.interactions import Interaction, InteractionStatus
from crmkit.core.leads import Lead
from crmkit.core.mail import CampaignEmail
from crmkit.core.money import Money
from crmkit.core.opportunities import Opportunity
from crmkit.core.query import Eq, In, Query
from crmkit.core.segments import Segment
from crmkit.services.base import (
    UNSET,
    Event,
    Unset,
    UserRef,
    ZoneRef,
    _check_uuid,
    _ref_id,
    _Service,
)
from crmkit.services.segments import SegmentRef
from crmkit.stores.base import UnitOfWork

if TYPE_CHECKING:
    from crmkit.services.mail import SendReport, TemplateRef

__all__ = ["CampaignRef", "CampaignService"]

#: What a campaign argument accepts: the record, its id or its name.
CampaignRef = Campaign | CampaignId | str
#: How :meth:`CampaignService.plan_actions` assigns each member's action.
Assignment = Literal["round_robin", "zone", "owner"]

#: an organization's interactions that count as the campaign already reaching it
_REACHED = (InteractionStatus.PLANNED.value, InteractionStatus.DONE.value)


class CampaignService(_Service[Campaign, CampaignId]):
    """Campaigns: budget, target segment, members, actions, results.

    A campaign is ``planned`` until :meth:`launch` snapshots its segment's
    members and makes it ``active``; :meth:`complete` and :meth:`cancel`
    end it.  Leads, opportunities and interactions name it with their
    ``campaign`` argument; :meth:`results` adds them up.
    """

    _cls = Campaign
    _aliases: ClassVar[Mapping[str, tuple[str, type[Entity]]]] = {
        "segment": ("segment_id", Segment),
        "owner": ("owner_id", User),
    }

    # --------------------------------------------------------------- writes
    def create(
        self,
        *,
        name: str,
        kind: CampaignKind | str = CampaignKind.OTHER,
        segment: SegmentRef | None = None,
        starts_on: date | None = None,
        ends_on: date | None = None,
        budget: Money | None = None,
        actual_cost: Money | None = None,
        owner: UserRef | None = None,
        description: str | None = None,
        tags: Iterable[str] = (),
        external_ref: str | None = None,
    ) -> Campaign:
        """Plan a campaign (status ``planned``).

        Args:
            name: unique name.
            kind: ``email``, ``event``, ``call``, ``fair``, ``web``, ``social``,
                ``advertising``, ``mail`` or ``other``.
            segment: the target segment (record, id or name).
            starts_on: first day.
            ends_on: last day (not before ``starts_on``).
            budget: what it may cost.
            actual_cost: what it cost so far (cost per lead and ROI use it).
            owner: the user in charge.
            description: what it is about.
            tags: free labels.
            external_ref: the host system's id for it.

        Raises:
            ValidationError: an unknown kind or segment, a negative amount,
                ``ends_on`` before ``starts_on``.
            DuplicateError: the name or ``external_ref`` is taken.
        """
        return self._create(
            {
                "name": name,
                "kind": kind,
                "segment": segment,
                "starts_on": starts_on,
                "ends_on": ends_on,
                "budget": budget,
                "actual_cost": actual_cost,
                "owner": owner,
                "description": description,
                "tags": tags,
                "external_ref": external_ref,
            }
        )

    def update(
        self,
        id: CampaignId,
        *,
        expected_version: int,
        name: str | Unset = UNSET,
        kind: CampaignKind | str | Unset = UNSET,
        segment: SegmentRef | Unset | None = UNSET,
        starts_on: date | Unset | None = UNSET,
        ends_on: date | Unset | None = UNSET,
        budget: Money | Unset | None = UNSET,
        actual_cost: Money | Unset | None = UNSET,
        owner: UserRef | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        tags: Iterable[str] | Unset = UNSET,
        external_ref: str | Unset | None = UNSET,
    ) -> Campaign:
        """Change a campaign's details (record its ``actual_cost`` as it is spent).

        Raises:
            NotFoundError: no such campaign.
            ConcurrencyError: it changed since ``expected_version``.
            ValidationError: invalid values.
        """
        return self._update(
            id,
            expected_version,
            {
                "name": name,
                "kind": kind,
                "segment": segment,
                "starts_on": starts_on,
                "ends_on": ends_on,
                "budget": budget,
                "actual_cost": actual_cost,
                "owner": owner,
                "description": description,
                "tags": tags,
                "external_ref": external_ref,
            },
        )

    def launch(self, campaign: CampaignRef, *, as_of: datetime | None = None) -> Campaign:
        """Make a planned campaign active: its members become its segment's members now.

        A campaign without a segment is launched with no members.

        Args:
            campaign: the campaign (record, id or name).
            as_of: the moment the segment's history criteria count back from
                (default now).

        Raises:
            NotFoundError: no such campaign.
            InvalidTransition: it is not planned.
        """
        when = self._crm.segments._as_of(as_of)

        def run(uow: UnitOfWork, events: list[Event]) -> Campaign:
            current = self._get(uow, campaign)
            check_move(current, CampaignStatus.ACTIVE)
            members: list[OrganizationId] = []
            if current.segment_id is not None:
                segments = self._crm.segments
                target = uow.repository(Segment).get(current.segment_id)
                members = segments._members(uow, target, when)
            values = {
                "status": CampaignStatus.ACTIVE,
                "members": tuple(members),
                "launched_at": self._crm.now(),
            }
            return self._change(uow, events, current, values)

        return self._crm._write(run)

    def complete(self, campaign: CampaignRef) -> Campaign:
        """End an active campaign; its results stay.

        Raises:
            NotFoundError: no such campaign.
            InvalidTransition: it is not active.
        """
        return self._move(campaign, CampaignStatus.COMPLETED)

    def cancel(self, campaign: CampaignRef) -> Campaign:
        """Call off a planned or active campaign.

        Raises:
            NotFoundError: no such campaign.
            InvalidTransition: it is completed or cancelled already.
        """
        return self._move(campaign, CampaignStatus.CANCELLED)

    def plan_actions(
        self,
        campaign: CampaignRef,
        *,
        kind: str,
        at: datetime,
        subject: str | None = None,
        assign: Assignment = "round_robin",
        users: Sequence[UserRef] = (),
        zone_owners: Mapping[ZoneRef, UserRef] | None = None,
    ) -> list[Interaction]:
        """Plan one interaction per member of an active campaign, in one transaction.

        Members that already have a planned or done interaction of this kind
        for the campaign are skipped, so running it again plans only for new
        members; so are members archived (or merged away) since the launch.

        Args:
            campaign: the campaign (record, id or name); it must be active.
            kind: the interaction kind (``"call"``, ``"email"``, ``"visit"``...).
            at: when each is scheduled.
            subject: their subject (default: the campaign's name).
            assign: ``"round_robin"`` deals members to ``users`` in turn (in
                member order); ``"zone"`` gives each member to its zone's user
                in ``zone_owners`` (members of other zones go round-robin to
                ``users``, or to their owner without ``users``); ``"owner"``
                gives each to the organization's owner.
            users: the users round-robin deals to.
            zone_owners: zone (record, id or key) -> user, for ``"zone"``.

        Returns:
            The interactions planned, in member order.

        Raises:
            NotFoundError: no such campaign.
            ValidationError: the campaign is not active (``campaign``), an
                unknown kind, a naive ``at``, no ``users`` for round-robin, no
                ``zone_owners`` for ``"zone"``, an unknown ``assign``.
        """
        if assign not in ("round_robin", "zone", "owner"):
            raise ValidationError(
                "assign", "must be round_robin, zone or owner", code="choice", value=assign
            )
        if assign == "round_robin" and not users:
            raise ValidationError("users", "round-robin needs at least one user", code="required")
        if assign == "zone" and not zone_owners:
            raise ValidationError("zone_owners", "is required to assign by zone", code="required")
        self._crm.interactions.kinds.get(kind)
        if not isinstance(at, datetime) or at.utcoffset() is None:
            raise ValidationError("at", "must be a timezone-aware datetime", value=at)

        def run(uow: UnitOfWork, events: list[Event]) -> list[Interaction]:
            current = self._get(uow, campaign)
            if current.status is not CampaignStatus.ACTIVE:
                raise ValidationError(
                    "campaign",
                    "only an active (launched) campaign plans actions",
                    code="status",
                    value=current.status.value,
                )
            dealers = [_user_id(uow, u, f"users[{i}]") for i, u in enumerate(users)]
            by_zone = {
                _ref_id(uow, Zone, z, "zone_owners"): _user_id(uow, u, "zone_owners")
                for z, u in (zone_owners or {}).items()
            }
            reached = {
                i.organization_id
                for i in uow.repository(Interaction).find(
                    Query(
                        filters=(
                            Eq("campaign_id", current.id),
                            Eq("kind", kind),
                            In("status", _REACHED),
                        )
                    )
                )
            }
            todo = [m for m in current.members if m not in reached]
            organizations = uow.repository(Organization).get_many(todo)
            turn = itertools.cycle(dealers) if dealers else None
            now = self._crm.now()
            common = self._crm.custom_fields.implied(uow, Interaction.ENTITY, {})
            planned: list[Interaction] = []
            for member in todo:
                org = organizations.get(member)
                if org is None or org.archived:  # archived (or merged) since the snapshot
                    continue
                assignee: UserId | None
                if assign == "owner":
                    assignee = org.owner_id
                elif assign == "zone" and org.zone_id in by_zone:
                    assignee = by_zone[org.zone_id]
                else:
                    assignee = next(turn) if turn is not None else org.owner_id
                interaction, event = changes.create(
                    Interaction,
                    id=uuid7(),
                    now=now,
                    kind=kind,
                    status=InteractionStatus.PLANNED,
                    scheduled_at=at,
                    subject=subject or current.name,
                    organization_id=member,
                    assignee_id=assignee,
                    campaign_id=current.id,
                    **common,
                )
                planned.append(self._validated(interaction, None))
                self._crm._record(uow, events, event)
            uow.repository(Interaction).add_many(planned)
            return planned

        return self._crm._write(run)

    def send(
        self,
        campaign: CampaignRef,
        template: TemplateRef,
        *,
        sender: str,
        sender_name: str | None = None,
        sender_user: UserRef | None = None,
        reply_to: str | None = None,
        headers: Mapping[str, str] | None = None,
        batch_size: int = 500,
        retry_unconfirmed: bool = False,
        dry_run: bool = False,
    ) -> SendReport:
        """E-mail ``template`` to the contacts of an active campaign's members.

        Recipients are the contacts (not archived) of the members (not
        archived) that have an e-mail address, are not ``do_not_contact``,
        and never unsubscribed: no e-mail record of any campaign has an
        ``unsubscribed_at`` for the contact or for its address.  A contact
        already sent this campaign's e-mail is skipped, so running it again
        sends nothing new; so is a second contact with an address already in
        the send.

        Every message is rendered first (a template error raises before
        anything is sent).  Then, batch by batch: the recipients are claimed
        (``claimed_at``, ``message_id``; committed), the batch goes to the
        ``crmkit_send_email`` hook, and each accepted message is recorded
        (``sent_at``) with one ``email`` interaction (done, with the campaign,
        organization and contact); each refused one with its error.  Delivery
        is at most once: recipients claimed by a send that stopped before
        recording the answer are *unconfirmed* and skipped, unless
        ``retry_unconfirmed``.

        Args:
            campaign: the campaign (record, id or name); it must be active.
            template: the template (record, id or name).
            sender: the ``From`` address.
            sender_name: the ``From`` display name.
            sender_user: the user sending (``sender`` in the template).
            reply_to: a ``Reply-To`` address.
            headers: extra headers (``{"List-Unsubscribe": "<mailto:...>"}``).
            batch_size: messages per hook call (1-1000).
            retry_unconfirmed: send again to unconfirmed recipients.
            dry_run: render and count, send and write nothing.

        Returns:
            A :class:`~crmkit.services.mail.SendReport`: sent, failures (typed,
            per recipient), skipped by reason, unconfirmed.

        Raises:
            NotFoundError: no such campaign or template.
            TemplateError: the template fails for some recipient; nothing sent.
            ValidationError: the campaign is not active, no plugin sends
                e-mail (code ``no_sender``), called inside ``crm.transaction()``
                (code ``transaction``), a bad address or batch size.
            HookError: the sender plugin raised; that batch is recorded as
                not sent and the send stops.
        """
        from crmkit.services.mail import send_campaign

        return send_campaign(
            self._crm,
            campaign,
            template,
            sender=sender,
            sender_name=sender_name,
            sender_user=sender_user,
            reply_to=reply_to,
            headers=headers,
            batch_size=batch_size,
            retry_unconfirmed=retry_unconfirmed,
            dry_run=dry_run,
        )

    def emails(self, campaign: CampaignRef) -> list[CampaignEmail]:
        """The campaign's e-mail records (one per contact), in id order."""

        def read(uow: UnitOfWork) -> list[CampaignEmail]:
            current = self._get(uow, campaign)
            return uow.repository(CampaignEmail).find(
                Query(filters=(Eq("campaign_id", current.id),), archived=None)
            )

        return self._crm._read(read)

    # ---------------------------------------------------------------- reads
    def get_by_name(self, name: str) -> Campaign:
        """The campaign called ``name``.

        Raises:
            NotFoundError: there is none.
        """
        return self._crm._read(lambda uow: self._get(uow, name))

    def members(self, campaign: CampaignRef) -> list[Organization]:
        """The organizations the campaign targets (its launch snapshot), in member order."""

        def read(uow: UnitOfWork) -> list[Organization]:
            ids = self._get(uow, campaign).members
            found = uow.repository(Organization).get_many(ids)
            return [found[i] for i in ids if i in found]

        return self._crm._read(read)

    def results(self, campaign: CampaignRef) -> CampaignResults:
        """Leads, opportunities, won value, cost per lead, ROI and e-mail metrics of the campaign.

        Opportunities count when they name the campaign or were converted
        from one of its leads, each once however many paths lead to it.  Won
        amounts in another currency than the cost's are converted at the
        ``crmkit_exchange_rate`` of their closing day.

        Raises:
            NotFoundError: no such campaign.
            ValidationError: a won amount in another currency with no exchange rate.
        """

        def read(uow: UnitOfWork) -> CampaignResults:
            current = self._get(uow, campaign)
            mine = (Eq("campaign_id", current.id),)
            leads = uow.repository(Lead).find(Query(filters=mine, archived=None))
            via_leads = [lead.opportunity_id for lead in leads if lead.opportunity_id is not None]
            opportunities = uow.repository(Opportunity).find(Query(filters=mine, archived=None))
            if via_leads:
                opportunities += list(uow.repository(Opportunity).get_many(set(via_leads)).values())
            emails = uow.repository(CampaignEmail).find(Query(filters=mine, archived=None))
            return results(current, leads, opportunities, convert=self._crm.convert, emails=emails)

        return self._crm._read(read)

    # -------------------------------------------------------------- helpers
    def _get(self, uow: UnitOfWork, campaign: object) -> Campaign:
        repo = self._repo(uow)
        if isinstance(campaign, Campaign):
            return repo.get(campaign.id)
        if isinstance(campaign, str):
            found = repo.get_by("name", campaign)
            if found is None:
                raise NotFoundError(Campaign.ENTITY, campaign)
            return found
        _check_uuid(campaign, "campaign")
        return repo.get(cast(CampaignId, campaign))

    def _move(self, campaign: CampaignRef, target: CampaignStatus) -> Campaign:
        def run(uow: UnitOfWork, events: list[Event]) -> Campaign:
            current = self._get(uow, campaign)
            check_move(current, target)
            return self._change(uow, events, current, {"status": target})

        return self._crm._write(run)

    def _change(
        self, uow: UnitOfWork, events: list[Event], current: Campaign, values: dict[str, Any]
    ) -> Campaign:
        new, event = changes.update(current, values, now=self._crm.now())
        if event is not None:
            self._repo(uow).update(self._validated(new, current), expected_version=current.version)
            self._crm._record(uow, events, event)
        return new

    def _prepare(
        self, uow: UnitOfWork, values: Mapping[str, Any], resolve: Any = None
    ) -> dict[str, Any]:
        values = dict(values)
        segment = values.get("segment")
        if isinstance(segment, str):  # a segment's name
            try:
                values["segment"] = self._crm.segments._get(uow, segment)
            except NotFoundError:
                raise ValidationError(
                    "segment", "there is no segment with that name", code="reference", value=segment
                ) from None
        if "kind" in values:
            values["kind"] = to_enum(CampaignKind, values["kind"], "kind")
        return super()._prepare(uow, values, resolve)


def _user_id(uow: UnitOfWork, user: object, name: str) -> UserId:
    found = _ref_id(uow, User, user, name)
    if found is None:
        raise ValidationError(name, "is required", code="required")
    return cast(UserId, found)
