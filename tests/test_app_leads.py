"""Leads through the facade: capture, the flow, and conversion with matching, on every store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

import crmkit
from crmkit import (
    ConcurrencyError,
    InvalidTransition,
    Lifecycle,
    Money,
    PhoneNumber,
    StageKind,
    ValidationError,
)
from crmkit.core.ids import CampaignId, uuid7
from crmkit.core.leads import Lead, LeadChannel, LeadStatus
from crmkit.stores.base import UnitOfWork
from crmkit.testing import RecordingPlugin
from tests.conftest import FixedClock, record_counts

CONVERTED = "crmkit_lead_converted"


@pytest.fixture
def recorder() -> RecordingPlugin:
    return RecordingPlugin()


@pytest.fixture
def crm(backend_url: str, clock: FixedClock, recorder: RecordingPlugin) -> Iterator[crmkit.CRM]:
    """A CRM on each backend in turn, recording hook calls, reading Spanish phones."""
    with crmkit.open(backend_url, clock=clock, default_region="ES", plugins=[recorder]) as crm:
        yield crm


def _ana(crm: crmkit.CRM, **values: Any) -> Lead:
    values = {
        "first_name": "Ana",
        "last_name": "García",
        "company": "Acme S.L.",
        "email": "ana@acme.es",
        "phone": "911 23 45 67",
        **values,
    }
    return crm.leads.create(**values)


def _snapshot(crm: crmkit.CRM) -> dict[str, int]:
    """Record counts, leads and interactions included."""
    return {**record_counts(crm), "leads": crm.leads.count(archived=None)}


def _count_write_units(crm: crmkit.CRM, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record the ``write`` flag of every unit of work the store opens from now on."""
    opened: list[bool] = []
    original = crm.store.unit_of_work

    def counting(*, write: bool = True) -> AbstractContextManager[UnitOfWork]:
        opened.append(write)
        return original(write=write)

    monkeypatch.setattr(crm.store, "unit_of_work", counting)
    return opened


# ===================================================================== capture


def test_create_reads_a_national_phone_and_resolves_the_aliases(crm: crmkit.CRM) -> None:
    """phone "911 23 45 67" with region ES is +34911234567; source by key, owner by record."""
    boss = crm.users.create(name="Berta")
    campaign = crm.campaigns.create(name="Feria de Madrid", kind="fair").id
    lead = _ana(crm, source="web", owner=boss, campaign=campaign, tags=["feria"])
    assert PhoneNumber("+34911234567") == lead.phone
    assert (crm.sources.get_by_key("web").id, boss.id, campaign) == (
        lead.source_id,
        lead.owner_id,
        lead.campaign_id,
    )
    assert (LeadStatus.NEW, LeadChannel.MANUAL, ("feria",)) == (
        lead.status,
        lead.channel,
        lead.tags,
    )
    assert lead == crm.leads.get(lead.id)
    assert ["create"] == [e.action.value for e in crm.history(lead.id)]


def test_a_lead_with_nothing_to_go_on_is_rejected(crm: crmkit.CRM) -> None:
    """Only a job title: required on first_name, nothing written."""
    with pytest.raises(ValidationError) as info:
        crm.leads.create(job_title="CTO")
    assert ("first_name", "required") == (info.value.field, info.value.code)
    assert 0 == crm.leads.count()


@pytest.mark.parametrize(
    ("values", "field", "code"),
    [
        ({"phone": "12"}, "phone", "impossible"),
        ({"email": "ana@"}, "email", "invalid_email"),
        ({"campaign": "spring"}, "campaign", "type"),
        ({"campaign": CampaignId(uuid7())}, "campaign", "reference"),
        ({"source": "nope"}, "source", "reference"),
        ({"channel": "fax"}, "channel", "choice"),
    ],
)
def test_create_names_the_argument_at_fault(
    crm: crmkit.CRM, values: dict[str, Any], field: str, code: str
) -> None:
    """Bad phone, e-mail, campaign, source or channel: the argument's name and a code."""
    with pytest.raises(ValidationError) as info:
        _ana(crm, **values)
    assert (field, code) == (info.value.field, info.value.code)
    assert 0 == crm.leads.count()


def test_bulk_create_takes_create_arguments(crm: crmkit.CRM) -> None:
    """Items hold create's arguments: national phones, source keys, channel, campaign."""
    campaign = crm.campaigns.create(name="Spring").id
    leads = crm.leads.bulk_create(
        [
            {"first_name": "Ana", "phone": "600 11 22 33", "source": "trade-fair"},
            {"company": "Globex", "channel": "import", "campaign": campaign},
            {"email": "luis@initech.es", "tags": ["a", "b"]},
        ],
        batch_size=2,
    )
    assert 3 == crm.leads.count()
    assert [PhoneNumber("+34600112233"), None, None] == [lead.phone for lead in leads]
    assert [LeadChannel.MANUAL, LeadChannel.IMPORT, LeadChannel.MANUAL] == [
        lead.channel for lead in leads
    ]
    assert crm.sources.get_by_key("trade-fair").id == leads[0].source_id
    assert campaign == leads[1].campaign_id
    assert leads == [crm.leads.get(lead.id) for lead in leads]


@pytest.mark.parametrize(
    ("item", "field", "code"),
    [
        ({"first_name": "Luis", "phone": "12"}, "[1].phone", "impossible"),
        ({"job_title": "CTO"}, "[1].first_name", "required"),
        ({"first_name": "Luis", "status": "converted"}, "[1].status", "unknown_field"),
        ({"first_name": "Luis", "campaign": 7}, "[1].campaign", "type"),
    ],
)
def test_bulk_create_writes_nothing_when_an_item_is_bad(
    crm: crmkit.CRM, item: dict[str, Any], field: str, code: str
) -> None:
    """The error names the item's index and field; no lead is written."""
    with pytest.raises(ValidationError) as info:
        crm.leads.bulk_create([{"first_name": "Ana"}, item])
    assert (field, code) == (info.value.field, info.value.code)
    assert 0 == crm.leads.count()


# ------------------------------------------------------------------ web form

FORM = {"nombre": "first_name", "apellidos": "last_name", "empresa": "company", "correo": "email"}


def test_a_web_form_is_mapped_stripped_and_filtered(crm: crmkit.CRM) -> None:
    """Mapped values are stripped, empty ones and unmapped fields ignored, channel web_form."""
    lead = crm.leads.capture_web_form(
        {
            "nombre": "  Ana ",
            "apellidos": "",
            "empresa": "Acme S.L.",
            "correo": " ana@ACME.es ",
            "utm_source": "google",
            "acepto": "on",
        },
        mapping=FORM,
        source="web",
    )
    assert lead is not None
    assert ("Ana", None, "Acme S.L.", "ana@acme.es") == (
        lead.first_name,
        lead.last_name,
        lead.company,
        str(lead.email),
    )
    assert (LeadChannel.WEB_FORM, crm.sources.get_by_key("web").id) == (
        lead.channel,
        lead.source_id,
    )
    assert [lead] == crm.leads.find()


@pytest.mark.parametrize("trap", ["http://spam.example", " x ", "0"])
def test_a_filled_honeypot_is_a_bot_and_writes_nothing(
    crm: crmkit.CRM, recorder: RecordingPlugin, trap: str
) -> None:
    """The hidden field is filled: None, no row, no hook call."""
    before = (_snapshot(crm), len(recorder.calls))
    result = crm.leads.capture_web_form(
        {"nombre": "Ana", "correo": "ana@acme.es", "website": trap},
        mapping=FORM,
        honeypot="website",
    )
    assert result is None
    assert before == (_snapshot(crm), len(recorder.calls))
    assert 0 == crm.leads.count(archived=None)


@pytest.mark.parametrize("trap", [None, "", "   "])
def test_an_empty_honeypot_lets_the_lead_in(crm: crmkit.CRM, trap: str | None) -> None:
    """Missing or blank trap field: a person, the lead is written."""
    payload: dict[str, object] = {"nombre": "Ana"}
    if trap is not None:
        payload["website"] = trap
    lead = crm.leads.capture_web_form(payload, mapping=FORM, honeypot="website")
    assert lead is not None
    assert "Ana" == lead.first_name
    assert 1 == crm.leads.count()


@pytest.mark.parametrize(
    ("payload", "mapping", "field", "code"),
    [
        ({"correo": "ana@"}, {"correo": "email"}, "correo", "invalid_email"),
        ({"tlf": "12"}, {"tlf": "phone", "n": "first_name"}, "tlf", "impossible"),
        ({"web": "ftp://x"}, {"web": "website", "n": "first_name"}, "web", "url"),
        ({"nombre": "x" * 201}, {"nombre": "first_name"}, "nombre", "too_long"),
        ({"nombre": ["Ana"]}, {"nombre": "first_name"}, "nombre", "type"),
        ({"cargo": "CTO"}, {"cargo": "job_title", "nombre": "first_name"}, "nombre", "required"),
        ({"cargo": "CTO"}, {"cargo": "job_title"}, "", "required"),
        ({"nombre": "Ana"}, {"nombre": "first_name", "x": "status"}, "mapping", "unknown_field"),
        ({"nombre": "Ana"}, {"a": "email", "b": "email"}, "mapping", "ambiguous"),
        ({"nombre": "Ana"}, ["nombre"], "mapping", "type"),
        ("nombre=Ana", FORM, "payload", "type"),
    ],
)
def test_web_form_errors_name_the_form_field(
    crm: crmkit.CRM, payload: Any, mapping: Any, field: str, code: str
) -> None:
    """A bad value names the FORM field (correo, not email); a bad mapping names mapping."""
    with pytest.raises(ValidationError) as info:
        crm.leads.capture_web_form(payload, mapping=mapping)
    assert (field, code) == (info.value.field, info.value.code)
    assert 0 == crm.leads.count()


def test_a_bad_mapping_is_reported_even_for_a_bot(crm: crmkit.CRM) -> None:
    """The mapping is the program's mistake: checked before the honeypot."""
    with pytest.raises(ValidationError) as info:
        crm.leads.capture_web_form({"trap": "x"}, mapping={"a": "nope"}, honeypot="trap")
    assert "mapping" == info.value.field


def test_several_form_fields_may_fill_the_message(crm: crmkit.CRM) -> None:
    """asunto and mensaje both map to message: joined by a blank line, in mapping order."""
    lead = crm.leads.capture_web_form(
        {"mensaje": "Quiero una demo", "asunto": "Demo", "correo": "ana@acme.es"},
        mapping={"asunto": "message", "mensaje": "message", "correo": "email"},
    )
    assert lead is not None
    assert "Demo\n\nQuiero una demo" == lead.message


# -------------------------------------------------------------- call, e-mail


def test_a_call_captures_a_lead_by_phone(crm: crmkit.CRM) -> None:
    """Channel call; the national number is read with the default region."""
    lead = crm.leads.from_call(phone="600112233", first_name="Luis", message="Llamará el lunes")
    assert (LeadChannel.CALL, PhoneNumber("+34600112233"), "Llamará el lunes") == (
        lead.channel,
        lead.phone,
        lead.message,
    )


@pytest.mark.parametrize("phone", ["", "  "])
def test_a_call_needs_a_phone(crm: crmkit.CRM, phone: str) -> None:
    """No number: required on phone, even with a name."""
    with pytest.raises(ValidationError) as info:
        crm.leads.from_call(phone=phone, first_name="Luis")
    assert ("phone", "required") == (info.value.field, info.value.code)
    assert 0 == crm.leads.count()


def test_an_email_captures_a_lead_with_subject_and_body_as_message(crm: crmkit.CRM) -> None:
    """Channel email; the message is the subject, a blank line, the body."""
    lead = crm.leads.from_email(
        email="luis@initech.es", subject=" Presupuesto ", body="¿Cuánto cuesta?\n"
    )
    assert (LeadChannel.EMAIL, "Presupuesto\n\n¿Cuánto cuesta?") == (lead.channel, lead.message)
    only_body = crm.leads.from_email(email="eva@initech.es", body="Hola")
    assert "Hola" == only_body.message


def test_an_email_lead_needs_an_address_and_a_sane_body(crm: crmkit.CRM) -> None:
    """No address: required on email; an overlong body: too_long on body."""
    with pytest.raises(ValidationError) as info:
        crm.leads.from_email(email="", first_name="Luis")
    assert ("email", "required") == (info.value.field, info.value.code)
    with pytest.raises(ValidationError) as info:
        crm.leads.from_email(email="luis@initech.es", subject="x", body="y" * 10_000)
    assert ("body", "too_long") == (info.value.field, info.value.code)
    assert 0 == crm.leads.count()


# ======================================================================= flow


def test_a_lead_is_worked_qualified_disqualified_and_reopened(crm: crmkit.CRM) -> None:
    """Each move is stored and audited; the reason is kept while disqualified."""
    lead = _ana(crm)
    assert LeadStatus.WORKING == crm.leads.work(lead.id).status
    assert LeadStatus.QUALIFIED == crm.leads.qualify(lead.id, expected_version=2).status
    out = crm.leads.disqualify(lead.id, reason="Sin presupuesto")
    assert (LeadStatus.DISQUALIFIED, "Sin presupuesto") == (out.status, out.status_reason)
    back = crm.leads.reopen(lead.id)
    assert (LeadStatus.WORKING, None, 5) == (back.status, back.status_reason, back.version)
    assert back == crm.leads.get(lead.id)
    statuses = [c.new for e in crm.history(lead.id) for c in e.changes if c.field == "status"]
    assert ["new", "working", "qualified", "disqualified", "working"] == statuses


def test_disqualifying_without_a_reason_changes_nothing(crm: crmkit.CRM) -> None:
    """reason "" is required; the lead stays new."""
    lead = _ana(crm)
    with pytest.raises(ValidationError) as info:
        crm.leads.disqualify(lead.id, reason=" ")
    assert ("reason", "required") == (info.value.field, info.value.code)
    assert lead == crm.leads.get(lead.id)


def test_only_a_disqualified_lead_can_be_reopened(crm: crmkit.CRM) -> None:
    """reopen on a new lead: InvalidTransition new -> working."""
    lead = _ana(crm)
    with pytest.raises(InvalidTransition) as info:
        crm.leads.reopen(lead.id)
    assert ("new", "working") == (info.value.source, info.value.target)
    assert lead == crm.leads.get(lead.id)


def test_a_stale_version_is_refused(crm: crmkit.CRM) -> None:
    """qualify with expected_version 1 after a move: ConcurrencyError, nothing changes."""
    lead = _ana(crm)
    worked = crm.leads.work(lead.id)
    with pytest.raises(ConcurrencyError):
        crm.leads.qualify(lead.id, expected_version=1)
    assert worked == crm.leads.get(lead.id)


def test_moving_to_the_current_status_writes_nothing(crm: crmkit.CRM) -> None:
    """work on a working lead returns it unchanged, no audit entry."""
    lead = crm.leads.work(_ana(crm).id)
    assert lead == crm.leads.work(lead.id)
    assert 2 == len(crm.history(lead.id))


def test_leads_are_found_by_status_channel_and_link(crm: crmkit.CRM) -> None:
    """find(status=..., channel=...) and find(organization=...) after a conversion."""
    ana = _ana(crm)
    crm.leads.from_call(phone="600112233")
    conversion = crm.leads.convert(ana.id)
    assert [conversion.lead] == crm.leads.find(status="converted")
    assert 1 == crm.leads.count(channel=LeadChannel.CALL)
    assert [ana.id] == [lead.id for lead in crm.leads.find(organization=conversion.organization)]


# ================================================================= conversion


def test_convert_creates_organization_contact_and_opportunity_in_one_transaction(
    crm: crmkit.CRM, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new prospect organization, a contact there, an opportunity; the lead links all three."""
    boss = crm.users.create(name="Berta")
    lead = _ana(crm, website="acme.es", source="web", owner=boss)
    clock.advance(hours=2)
    opened = _count_write_units(crm, monkeypatch)

    conversion = crm.leads.convert(
        lead.id, opportunity_name="ERP Acme", amount=Money("9000", "EUR"), expected_version=1
    )

    assert [True] == [write for write in opened if write]
    org, contact, opp = conversion.organization, conversion.contact, conversion.opportunity
    assert org is not None
    assert contact is not None
    assert opp is not None
    assert (True, True) == (conversion.created_organization, conversion.created_contact)
    assert ("Acme S.L.", Lifecycle.PROSPECT, "https://acme.es", (), ()) == (
        org.name,
        org.lifecycle,
        org.website,
        org.emails,
        org.phones,
    )
    assert (lead.source_id, boss.id) == (org.source_id, org.owner_id)
    assert ("Ana", "García", "ana@acme.es", ("+34911234567",), org.id, boss.id) == (
        contact.first_name,
        contact.last_name,
        str(contact.email),
        tuple(p.e164 for p in contact.phones),
        contact.organization_id,
        contact.owner_id,
    )
    assert ("ERP Acme", "sales", StageKind.OPEN, org.id, contact.id) == (
        opp.name,
        opp.pipeline,
        opp.status,
        opp.organization_id,
        opp.contact_id,
    )
    assert (Money("9000", "EUR"), lead.source_id, boss.id) == (
        opp.amount,
        opp.source_id,
        opp.owner_id,
    )
    converted = crm.leads.get(lead.id)
    assert conversion.lead == converted
    assert (LeadStatus.CONVERTED, org.id, contact.id, opp.id, clock.current) == (
        converted.status,
        converted.organization_id,
        converted.contact_id,
        converted.opportunity_id,
        converted.converted_at,
    )
    assert (org, contact, opp) == (
        crm.organizations.get(org.id),
        crm.contacts.get(contact.id),
        crm.opportunities.get(opp.id),
    )


def test_create_opportunity_names_it_after_the_organization(crm: crmkit.CRM) -> None:
    """create_opportunity=True without a name: the organization's name, in the given pipeline."""
    conversion = crm.leads.convert(
        _ana(crm).id, create_opportunity=True, pipeline="gestion-comercial"
    )
    assert conversion.opportunity is not None
    assert ("Acme S.L.", "gestion-comercial") == (
        conversion.opportunity.name,
        conversion.opportunity.pipeline,
    )


def test_without_an_opportunity_request_none_is_opened(crm: crmkit.CRM) -> None:
    """The default opens no opportunity."""
    conversion = crm.leads.convert(_ana(crm).id)
    assert (None, None) == (conversion.opportunity, conversion.lead.opportunity_id)
    assert 0 == crm.opportunities.count()


def test_converting_twice_creates_nothing_the_second_time(
    crm: crmkit.CRM, recorder: RecordingPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second call returns the stored links, created_* false: no row, no audit, no hook."""
    lead = _ana(crm)
    first = crm.leads.convert(lead.id, create_opportunity=True)
    assert first.organization is not None
    assert first.contact is not None
    ids = [lead.id, first.organization.id, first.contact.id]
    before = (_snapshot(crm), [len(crm.history(i)) for i in ids], len(recorder.calls))
    opened = _count_write_units(crm, monkeypatch)

    again = crm.leads.convert(lead.id, create_opportunity=True, expected_version=1)

    assert (first.lead, first.organization, first.contact, first.opportunity) == (
        again.lead,
        again.organization,
        again.contact,
        again.opportunity,
    )
    assert (False, False) == (again.created_organization, again.created_contact)
    assert before == (_snapshot(crm), [len(crm.history(i)) for i in ids], len(recorder.calls))
    assert 1 == len(recorder.calls_to(CONVERTED))
    assert [] == [write for write in opened if write]


def test_an_email_match_links_the_existing_contact(crm: crmkit.CRM) -> None:
    """The contact with the lead's address (domain case aside) is linked, not duplicated."""
    globex = crm.organizations.create(name="Globex")
    ana = crm.contacts.create(first_name="Ana María", email="ana@ACME.ES", organization=globex)
    before = _snapshot(crm)

    conversion = crm.leads.convert(_ana(crm).id)

    assert (ana.id, False) == (conversion.contact.id, conversion.created_contact)  # type: ignore[union-attr]
    # the contact's organization wins over the lead's company name
    assert (globex.id, False) == (conversion.organization.id, conversion.created_organization)  # type: ignore[union-attr]
    assert {**before, "leads": 1} == _snapshot(crm)
    assert ana == crm.contacts.get(ana.id)


def test_a_phone_match_links_the_existing_contact(crm: crmkit.CRM) -> None:
    """No e-mail on either side: the contact with the lead's phone is linked."""
    luis = crm.contacts.create(first_name="Luis", phones=["+34 600 11 22 33"])
    lead = crm.leads.from_call(phone="600 11 22 33", first_name="Luis")
    conversion = crm.leads.convert(lead.id)
    assert (luis.id, None, False) == (
        conversion.contact.id,  # type: ignore[union-attr]
        conversion.organization,
        conversion.created_contact,
    )
    assert 1 == crm.contacts.count()


def test_a_contact_with_another_email_sharing_the_phone_is_another_person(
    crm: crmkit.CRM,
) -> None:
    """The switchboard number does not make Eva into Ana: a new contact is created."""
    eva = crm.contacts.create(first_name="Eva", email="eva@acme.es", phones=["911234567"])
    conversion = crm.leads.convert(_ana(crm, company=None).id)
    assert conversion.contact is not None
    assert (True, "Ana") == (conversion.created_contact, conversion.contact.first_name)
    assert conversion.contact.id != eva.id


def test_a_name_match_links_the_existing_organization(crm: crmkit.CRM) -> None:
    """The lead's "Acme SA" finds "ACME, S.A."; a new contact is created there."""
    acme = crm.organizations.create(name="ACME, S.A.", lifecycle="prospect")
    conversion = crm.leads.convert(_ana(crm, company="Acme SA").id)
    assert conversion.organization is not None
    assert conversion.contact is not None
    assert (acme.id, False, True) == (
        conversion.organization.id,
        conversion.created_organization,
        conversion.created_contact,
    )
    assert acme.id == conversion.contact.organization_id
    assert 1 == crm.organizations.count()


@pytest.mark.parametrize(
    ("field", "value"), [("emails", ["ana@acme.es"]), ("phones", ["+34911234567"])]
)
def test_an_organization_is_matched_by_email_or_phone_when_the_name_differs(
    crm: crmkit.CRM, field: str, value: list[str]
) -> None:
    """ "Acme Iberia" is not "Globex", but Globex has the lead's address (or phone)."""
    extra: dict[str, Any] = {field: value}
    globex = crm.organizations.create(name="Globex", **extra)
    conversion = crm.leads.convert(_ana(crm, company="Acme Iberia").id)
    assert (globex.id, False) == (
        conversion.organization.id,  # type: ignore[union-attr]
        conversion.created_organization,
    )


def test_an_ambiguous_contact_match_raises_and_writes_nothing(
    crm: crmkit.CRM, recorder: RecordingPlugin
) -> None:
    """Two contacts have the address: ambiguous on contact, listing both ids; contact= decides."""
    one = crm.contacts.create(first_name="Ana", email="ana@acme.es")
    two = crm.contacts.create(first_name="Ana G.", email="ana@acme.es")
    lead = _ana(crm)
    before = (_snapshot(crm), len(recorder.calls))

    with pytest.raises(ValidationError) as info:
        crm.leads.convert(lead.id, create_opportunity=True)

    assert ("contact", "ambiguous") == (info.value.field, info.value.code)
    assert {one.id, two.id} == set(info.value.value)
    assert before == (_snapshot(crm), len(recorder.calls))
    assert lead == crm.leads.get(lead.id)
    conversion = crm.leads.convert(lead.id, contact=two)
    assert (two.id, False) == (conversion.contact.id, conversion.created_contact)  # type: ignore[union-attr]


def test_an_ambiguous_organization_match_raises_and_writes_nothing(crm: crmkit.CRM) -> None:
    """ "Acme SA" and "ACME S.L." share the key acme: ambiguous on organization."""
    sa = crm.organizations.create(name="Acme SA")
    sl = crm.organizations.create(name="ACME S.L.")
    lead = _ana(crm, company="Acme")
    before = _snapshot(crm)

    with pytest.raises(ValidationError) as info:
        crm.leads.convert(lead.id)

    assert ("organization", "ambiguous") == (info.value.field, info.value.code)
    assert {sa.id, sl.id} == set(info.value.value)
    assert before == _snapshot(crm)
    assert LeadStatus.NEW == crm.leads.get(lead.id).status
    conversion = crm.leads.convert(lead.id, organization=sl.id)
    assert sl.id == conversion.organization.id  # type: ignore[union-attr]


def test_explicit_records_win_over_matching(crm: crmkit.CRM) -> None:
    """organization= and contact= are linked even though others match by name and e-mail."""
    crm.organizations.create(name="Acme SL")
    crm.contacts.create(first_name="Ana", email="ana@acme.es")
    chosen_org = crm.organizations.create(name="Acme Holding")
    chosen = crm.contacts.create(first_name="Ana", last_name="García")
    conversion = crm.leads.convert(_ana(crm).id, organization=chosen_org, contact=chosen.id)
    assert (chosen_org.id, chosen.id, False, False) == (
        conversion.organization.id,  # type: ignore[union-attr]
        conversion.contact.id,  # type: ignore[union-attr]
        conversion.created_organization,
        conversion.created_contact,
    )


@pytest.mark.parametrize(
    ("argument", "value", "code"),
    [("organization", "acme", "type"), ("contact", uuid7(), "reference")],
)
def test_a_bad_explicit_record_names_the_argument(
    crm: crmkit.CRM, argument: str, value: object, code: str
) -> None:
    """A string, or an id of nothing: the argument's name, nothing written."""
    lead = _ana(crm)
    with pytest.raises(ValidationError) as info:
        crm.leads.convert(lead.id, **{argument: value})  # type: ignore[arg-type]
    assert (argument, code) == (info.value.field, info.value.code)
    assert lead == crm.leads.get(lead.id)


def test_a_company_only_lead_becomes_an_organization_without_contact(crm: crmkit.CRM) -> None:
    """No person: no contact; the organization keeps the lead's e-mail and phone."""
    lead = crm.leads.create(company="Initech", email="info@initech.es", phone="915550000")
    conversion = crm.leads.convert(lead.id, create_opportunity=True)
    org = conversion.organization
    assert org is not None
    assert conversion.opportunity is not None
    assert (None, False, True) == (
        conversion.contact,
        conversion.created_contact,
        conversion.created_organization,
    )
    assert (("info@initech.es",), ("+34915550000",)) == (
        tuple(str(e) for e in org.emails),
        tuple(p.e164 for p in org.phones),
    )
    assert (org.id, None) == (
        conversion.opportunity.organization_id,
        conversion.opportunity.contact_id,
    )
    assert 0 == crm.contacts.count()


def test_a_person_without_company_becomes_a_contact_without_organization(
    crm: crmkit.CRM,
) -> None:
    """No company and nothing matched: a contact at no organization; an opportunity on it."""
    lead = crm.leads.create(last_name="Pérez", email="perez@gmail.com")
    conversion = crm.leads.convert(lead.id, opportunity_name="Reforma")
    contact = conversion.contact
    assert contact is not None
    assert conversion.opportunity is not None
    assert (None, "Pérez", None, None) == (
        conversion.organization,
        contact.first_name,
        contact.last_name,
        contact.organization_id,
    )
    assert (contact.id, None) == (
        conversion.opportunity.contact_id,
        conversion.opportunity.organization_id,
    )


def test_a_lead_with_only_an_address_that_matches_nothing_cannot_be_converted(
    crm: crmkit.CRM,
) -> None:
    """Nothing to create from and nothing matched: required on contact, nothing written."""
    lead = crm.leads.create(email="anon@example.com")
    with pytest.raises(ValidationError) as info:
        crm.leads.convert(lead.id)
    assert ("contact", "required") == (info.value.field, info.value.code)
    assert lead == crm.leads.get(lead.id)
    known = crm.contacts.create(first_name="Anon", email="anon@example.com")
    assert known.id == crm.leads.convert(lead.id).contact.id  # type: ignore[union-attr]


def test_archived_records_are_not_matched(crm: crmkit.CRM) -> None:
    """An archived contact with the address and an archived namesake: new records instead."""
    old = crm.contacts.create(first_name="Ana", email="ana@acme.es")
    crm.contacts.archive(old.id, expected_version=1)
    gone = crm.organizations.create(name="Acme SL")
    crm.organizations.archive(gone.id, expected_version=1)
    conversion = crm.leads.convert(_ana(crm).id)
    assert (True, True) == (conversion.created_contact, conversion.created_organization)


def test_a_disqualified_lead_cannot_be_converted(crm: crmkit.CRM) -> None:
    """InvalidTransition disqualified -> converted; nothing written."""
    lead = crm.leads.disqualify(_ana(crm).id, reason="Competidor")
    before = _snapshot(crm)
    with pytest.raises(InvalidTransition) as info:
        crm.leads.convert(lead.id)
    assert ("disqualified", "converted") == (info.value.source, info.value.target)
    assert before == _snapshot(crm)


def test_a_stale_version_refuses_the_conversion(crm: crmkit.CRM) -> None:
    """expected_version 1 after a move: ConcurrencyError, no organization or contact."""
    lead = crm.leads.work(_ana(crm).id)
    before = _snapshot(crm)
    with pytest.raises(ConcurrencyError):
        crm.leads.convert(lead.id, expected_version=1)
    assert before == _snapshot(crm)


def test_a_failing_opportunity_rolls_back_the_whole_conversion(
    crm: crmkit.CRM, recorder: RecordingPlugin
) -> None:
    """An unknown pipeline fails after the organization and contact were added: none stays."""
    lead = _ana(crm)
    recorder.clear()
    before = _snapshot(crm)
    with pytest.raises(ValidationError) as info:
        crm.leads.convert(lead.id, create_opportunity=True, pipeline="nope")
    assert "pipeline" == info.value.field
    assert before == _snapshot(crm)
    assert ["crmkit_validate_organization", "crmkit_validate_contact"] == recorder.names()
    assert lead == crm.leads.get(lead.id)
    assert [] == crm.organizations.find(archived=None)


def test_lead_converted_fires_once_after_commit(crm: crmkit.CRM, recorder: RecordingPlugin) -> None:
    """Inside a transaction the hook waits for the commit; it receives the lead and conversion."""
    lead = _ana(crm)
    with crm.transaction():
        conversion = crm.leads.convert(lead.id)
        assert [] == recorder.calls_to(CONVERTED)
    calls = recorder.calls_to(CONVERTED)
    assert 1 == len(calls)
    assert (conversion.lead, conversion) == (calls[0].kwargs["lead"], calls[0].kwargs["conversion"])
    names = recorder.names()
    assert names.index("crmkit_organization_created") < names.index(CONVERTED)


def test_a_conversion_undone_by_its_transaction_fires_nothing(
    crm: crmkit.CRM, recorder: RecordingPlugin
) -> None:
    """The outer block raises: no organization, lead still new, no hook call."""
    lead = _ana(crm)
    before = _snapshot(crm)

    def abandoned() -> None:
        with crm.transaction():
            crm.leads.convert(lead.id)
            raise RuntimeError("abandon")

    with pytest.raises(RuntimeError):
        abandoned()
    assert before == _snapshot(crm)
    assert LeadStatus.NEW == crm.leads.get(lead.id).status
    assert [] == recorder.calls_to(CONVERTED)


# ------------------------------------------------------------------ lifecycle


def test_a_matched_target_organization_becomes_a_prospect_audited(crm: crmkit.CRM) -> None:
    """target -> prospect, in the organization's audit trail."""
    acme = crm.organizations.create(name="Acme SL")
    assert Lifecycle.TARGET == acme.lifecycle
    conversion = crm.leads.convert(_ana(crm).id)
    assert conversion.organization is not None
    assert Lifecycle.PROSPECT == conversion.organization.lifecycle
    assert conversion.organization == crm.organizations.get(acme.id)
    last = crm.history(acme.id)[-1]
    assert ("update", [("lifecycle", "target", "prospect")]) == (
        last.action.value,
        [(c.field, c.old, c.new) for c in last.changes],
    )


@pytest.mark.parametrize("lifecycle", [Lifecycle.PROSPECT, Lifecycle.CUSTOMER, Lifecycle.FORMER])
def test_the_lifecycle_never_moves_backwards(crm: crmkit.CRM, lifecycle: Lifecycle) -> None:
    """A prospect, customer or former customer keeps its lifecycle and version."""
    acme = crm.organizations.create(name="Acme SL", lifecycle=lifecycle)
    conversion = crm.leads.convert(_ana(crm).id)
    assert acme == conversion.organization
    assert acme == crm.organizations.get(acme.id)
