"""The campaign e-mail API's types, as a type checker sees them (mypy checks the asserts)."""

from __future__ import annotations

from typing import assert_type

import crmkit
from crmkit import (
    And,
    CampaignEmail,
    EmailMetrics,
    EmailTemplate,
    OutgoingEmail,
    RenderedEmail,
    SendOutcome,
    SendReport,
    hookimpl,
)


class _Accepts:
    @hookimpl
    def crmkit_send_email(self, messages: list[OutgoingEmail]) -> list[SendOutcome]:
        return [SendOutcome(message_id=m.message_id, ok=True) for m in messages]


def test_the_mail_api_returns_typed_records() -> None:
    with crmkit.open(":memory:", plugins=[_Accepts()]) as crm:
        acme = crm.organizations.create(name="Acme")
        ana = crm.contacts.create(first_name="Ana", email="ana@acme.es", organization=acme)
        template = crm.templates.create(
            name="t", variants={"en": {"subject": "Hi {{ contact.first_name }}", "text": "x"}}
        )
        assert_type(template, EmailTemplate)
        rendered = crm.templates.render(template, contact=ana)
        assert_type(rendered, RenderedEmail)
        segment = crm.segments.create(name="all", criteria=And())
        campaign = crm.campaigns.launch(crm.campaigns.create(name="c", segment=segment))
        report = crm.campaigns.send(campaign, template, sender="crm@example.com")
        assert_type(report, SendReport)
        assert_type(crm.campaigns.emails(campaign), list[CampaignEmail])
        email = crm.campaigns.results(campaign).email
        assert_type(email, EmailMetrics)
        assert (1, "Hi Ana") == (email.sent, rendered.subject)
