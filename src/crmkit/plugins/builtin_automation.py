"""Built-in plugin: the action kinds automation rules can use out of the box.

* ``plan_interaction``: plan an interaction about the record (kind, due
  offset, subject), for the record's owner or a given user;
* ``apply_sequence``: plan every step of a registered sequence for the
  record's organization;
* ``assign_owner``: make a user the record's owner (an interaction's assignee);
* ``notify``: call ``crmkit_rule_fired`` after the firing commits.

They are registered through the public ``crmkit_register_rule_actions`` hook,
as a third party's would be (:mod:`crmkit.plugins.builtin_mail` adds
``send_template`` the same way).  Each runs inside the firing's transaction
through the services of ``context.crm``.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from crmkit.core.automation import ActionContext, ActionKind, Scalar
from crmkit.core.errors import ValidationError
from crmkit.core.ids import UserId
from crmkit.plugins import hookimpl

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["crmkit_register_rule_actions"]


def _text(params: Mapping[str, Scalar], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError(name, "must be text", code="required" if value is None else "type")
    return value


def _minutes(params: Mapping[str, Scalar], name: str) -> int:
    value = params.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(name, "must be a whole number of minutes", code="type", value=value)
    return value


def _user(params: Mapping[str, Scalar], name: str) -> UserId | None:
    value = _text(params, name)
    if value is None:
        return None
    try:
        return UserId(UUID(value))
    except ValueError:
        raise ValidationError(name, "must be a user id", code="uuid", value=value) from None


def _assignee(context: ActionContext) -> UserId | None:
    return _user(context.action.params, "assignee") or context.subject.owner_id


def _links(context: ActionContext) -> dict[str, Any]:
    """What a planned interaction about the subject refers to."""
    record = context.subject.record
    links: dict[str, Any] = {
        "organization": context.subject.organization_id,
        "contact": context.subject.contact_id,
    }
    entity = context.subject.entity
    if entity == "opportunity":
        links["opportunity"] = record.id
    elif entity == "case":
        links["case"] = record.id
    elif entity == "interaction":
        links["follow_up_of"] = record.id
        links["opportunity"] = getattr(record, "opportunity_id", None)
        links["case"] = getattr(record, "case_id", None)
    return links


# ------------------------------------------------------------------ actions


def _check_plan(params: Mapping[str, Scalar]) -> None:
    _text(params, "kind", required=True)
    _minutes(params, "due_in_minutes")
    _text(params, "subject")
    _user(params, "assignee")


def _plan_interaction(context: ActionContext) -> None:
    params = context.action.params
    _check_plan(params)
    crm: CRM = context.crm
    crm.interactions.plan(
        kind=str(params["kind"]),
        scheduled_at=context.now + timedelta(minutes=_minutes(params, "due_in_minutes")),
        subject=_text(params, "subject") or context.rule.name,
        assignee=_assignee(context),
        **_links(context),
    )


def _check_sequence(params: Mapping[str, Scalar]) -> None:
    _text(params, "sequence", required=True)
    _user(params, "assignee")
    _minutes(params, "delay_minutes")


def _apply_sequence(context: ActionContext) -> None:
    params = context.action.params
    _check_sequence(params)
    crm: CRM = context.crm
    links = _links(context)
    crm.interactions.apply_sequence(
        str(params["sequence"]),
        organization=links["organization"],
        contact=links["contact"],
        start=context.now + timedelta(minutes=_minutes(params, "delay_minutes")),
        assignee=_assignee(context),
        opportunity=links.get("opportunity"),
    )


def _check_owner(params: Mapping[str, Scalar]) -> None:
    if _user(params, "user") is None:
        raise ValidationError("user", "is required", code="required")


def _assign_owner(context: ActionContext) -> None:
    _check_owner(context.action.params)
    user = _user(context.action.params, "user")
    crm: CRM = context.crm
    record = context.subject.record
    entity = context.subject.entity
    if entity == "interaction":
        crm.interactions.reassign(record.id, to=user)
        return
    services: dict[str, Any] = {
        "opportunity": crm.opportunities,
        "lead": crm.leads,
        "case": crm.cases,
        "organization": crm.organizations,
    }
    service = services.get(entity)
    if service is None:
        raise ValidationError("user", f"a {entity} has no owner", code="type", value=entity)
    current = service.get(record.id)
    service.update(current.id, expected_version=current.version, owner=user)


def _check_notify(params: Mapping[str, Scalar]) -> None:
    _text(params, "note")


def _notify(context: ActionContext) -> None:
    _check_notify(context.action.params)
    context.notes.append(_text(context.action.params, "note"))


@hookimpl
def crmkit_register_rule_actions(crm: CRM) -> list[ActionKind]:
    """plan_interaction, apply_sequence, assign_owner and notify."""
    return [
        ActionKind(
            key="plan_interaction",
            run=_plan_interaction,
            check=_check_plan,
            label="Plan an interaction",
        ),
        ActionKind(
            key="apply_sequence",
            run=_apply_sequence,
            check=_check_sequence,
            label="Apply a sequence",
        ),
        ActionKind(
            key="assign_owner", run=_assign_owner, check=_check_owner, label="Assign an owner"
        ),
        ActionKind(key="notify", run=_notify, check=_check_notify, label="Notify plugins"),
    ]
