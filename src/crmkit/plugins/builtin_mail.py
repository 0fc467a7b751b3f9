"""Built-in plugin: the ``send_template`` action kind of automation rules.

``Action.send_template("welcome", sender="ventas@example.com")`` e-mails a
template to the contact of the record a rule fires for.  The action's
``check`` (when the rule is saved) refuses bad parameters and a template
that does not exist; its ``run`` is
:meth:`crmkit.services.mail.TemplateService.send_for_rule`: rendered inside
the firing's transaction, handed to the ``crmkit_send_email`` hook after the
firing commits (at most once), logged as an ``email`` interaction.

Registered through the public ``crmkit_register_rule_actions`` hook, as the
kinds of :mod:`crmkit.plugins.builtin_automation` are.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from uuid import UUID

from crmkit.core.automation import ActionContext, ActionKind, Scalar
from crmkit.core.errors import NotFoundError, ValidationError
from crmkit.core.fields import email_item
from crmkit.core.ids import UserId
from crmkit.plugins import hookimpl

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["crmkit_register_rule_actions"]


def _optional_text(params: Mapping[str, Scalar], name: str) -> None:
    value = params.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise ValidationError(name, "must be text", code="type", value=value)


def _checker(crm: CRM) -> Callable[[Mapping[str, Scalar]], None]:
    def check(params: Mapping[str, Scalar]) -> None:
        unknown = sorted(set(params) - {"template", "sender", "sender_name", "sender_user"})
        if unknown:
            raise ValidationError(
                unknown[0], "is not a send_template parameter", code="unknown_field"
            )
        name = params.get("template")
        if not isinstance(name, str) or not name:
            raise ValidationError("template", "is required", code="required", value=name)
        email_item(params.get("sender"), "sender")
        _optional_text(params, "sender_name")
        _optional_text(params, "sender_user")
        user = params.get("sender_user")
        try:
            user_id = None if user is None else UUID(str(user))
        except ValueError:
            raise ValidationError(
                "sender_user", "must be a user id", code="uuid", value=user
            ) from None
        try:
            crm.templates.get_by_name(name)
            if user_id is not None:
                crm.users.get(UserId(user_id))
        except NotFoundError as error:
            field = "template" if error.entity == "email_template" else "sender_user"
            raise ValidationError(
                field,
                f"there is no {error.entity.replace('_', ' ')} {error.id!s}",
                code="reference",
                value=error.id,
            ) from None

    return check


@hookimpl
def crmkit_register_rule_actions(crm: CRM) -> list[ActionKind]:
    """send_template."""

    def run(context: ActionContext) -> None:
        context.crm.templates.send_for_rule(context)

    return [
        ActionKind(
            key="send_template", run=run, check=_checker(crm), label="Send an e-mail template"
        )
    ]
