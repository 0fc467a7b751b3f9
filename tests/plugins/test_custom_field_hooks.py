"""crmkit_register_custom_fields: definitions from plugins, checked at open."""

from __future__ import annotations

import pytest

import crmkit
from crmkit import CustomField, PluginError, ValidationError, hookimpl
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock


class Fields:
    """A plugin whose crmkit_register_custom_fields returns ``result``."""

    def __init__(self, result: object) -> None:
        self.result = result

    @hookimpl
    def crmkit_register_custom_fields(self, crm: crmkit.CRM) -> object:
        return self.result


TIER = CustomField(
    entity="organization", key="tier", label="Tier", type="choice", choices=["gold", "silver"]
)
VIP = CustomField(entity="contact", key="vip", label="VIP", type="boolean", default=False)


def test_registered_fields_are_defined_when_the_crm_opens(clock: FixedClock) -> None:
    """Every plugin's definitions are in crm.custom_fields, by entity type."""
    with crmkit.open(":memory:", plugins=[Fields([TIER]), Fields([VIP])], clock=clock) as crm:
        assert [TIER] == crm.custom_fields.for_entity("organization")
        assert [VIP] == crm.custom_fields.for_entity("contact")
        assert {"vip": False} == crm.contacts.create(first_name="Ana").custom


def test_registered_fields_check_writes(clock: FixedClock) -> None:
    """A plugin's choice field refuses a value outside its choices."""
    with (
        crmkit.open(":memory:", plugins=[Fields([TIER])], clock=clock) as crm,
        pytest.raises(ValidationError) as info,
    ):
        crm.organizations.create(name="Acme", custom={"tier": "platinum"})

    assert ("custom.tier", "choice") == (info.value.field, info.value.code)


def test_the_same_key_twice_is_a_plugin_error(clock: FixedClock) -> None:
    """Two plugins registering organization.tier fail crmkit.open()."""
    with pytest.raises(PluginError, match=r"organization\.tier"):
        crmkit.open(":memory:", plugins=[Fields([TIER]), Fields([TIER])], clock=clock)


def test_the_same_key_on_two_entity_types_is_fine(clock: FixedClock) -> None:
    """Keys are per entity type."""
    lead_tier = CustomField(entity="lead", key="tier", label="Tier", type="text")

    with crmkit.open(":memory:", plugins=[Fields([TIER, lead_tier])], clock=clock) as crm:
        assert [lead_tier] == crm.custom_fields.for_entity("lead")


@pytest.mark.parametrize("result", [TIER, [TIER, "tier"]])
def test_a_wrong_return_value_is_a_plugin_error(clock: FixedClock, result: object) -> None:
    """Not a list, or not CustomField items, fails crmkit.open()."""
    with pytest.raises(PluginError, match="crmkit_register_custom_fields"):
        crmkit.open(":memory:", plugins=[Fields(result)], clock=clock)


def test_the_hook_is_called_once_with_the_crm(clock: FixedClock) -> None:
    """The recorder sees one call, with the CRM being opened."""
    recorder = RecordingPlugin()

    with crmkit.open(":memory:", plugins=[recorder], clock=clock) as crm:
        calls = recorder.calls_to("crmkit_register_custom_fields")

        assert [{"crm": crm}] == [c.kwargs for c in calls]
