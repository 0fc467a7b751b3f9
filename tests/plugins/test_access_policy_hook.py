"""The lookup hook crmkit_access_policy, behind crm.as_user()."""

from __future__ import annotations

import pytest

import crmkit
from crmkit import HookError, hookimpl
from crmkit.core.access import DEFAULT_RIGHTS, Policy, Principal, Reach, Right
from crmkit.core.entities import Role


class GuestsReadOrganizations:
    """Extends the default rules: guests may read (not change) every organization."""

    def __init__(self) -> None:
        self.asked: list[Principal] = []

    @hookimpl
    def crmkit_access_policy(self, principal: Principal) -> Policy | None:
        self.asked.append(principal)
        if principal.role is not Role.GUEST:
            return None  # the default rules
        rights = {**DEFAULT_RIGHTS, Role.GUEST: {"organization": Right({Reach.ALL}, set())}}
        return Policy(rights=rights)


def test_a_plugin_policy_extends_the_default_rules() -> None:
    plugin = GuestsReadOrganizations()
    with crmkit.open(":memory:", plugins=[plugin]) as crm:
        guest = crm.users.create(name="Gus", role="guest")
        crm.organizations.create(name="Acme")
        scoped = crm.as_user(guest)
        assert [o.name for o in scoped.organizations.find()] == ["Acme"]
        assert scoped.contacts.count() == 0
        with pytest.raises(crmkit.AccessDenied, match="create organization"):
            scoped.organizations.create(name="Globex")
        assert [p.user_id for p in plugin.asked] == [guest.id]


def test_a_policy_passed_to_as_user_skips_the_hook() -> None:
    plugin = GuestsReadOrganizations()
    with crmkit.open(":memory:", plugins=[plugin]) as crm:
        guest = crm.users.create(name="Gus", role="guest")
        crm.organizations.create(name="Acme")
        assert crm.as_user(guest, policy=Policy()).organizations.count() == 0
        assert plugin.asked == []


class Wrong:
    @hookimpl
    def crmkit_access_policy(self) -> object:
        return "everyone is admin"


def test_an_answer_that_is_not_a_policy_is_a_hook_error() -> None:
    with crmkit.open(":memory:", plugins=[Wrong()]) as crm:
        user = crm.users.create(name="Ana")
        with pytest.raises(HookError, match="not a Policy"):
            crm.as_user(user)
