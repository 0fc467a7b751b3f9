"""The 10,000-member campaign send through a real SMTP server on loopback (issue 9).

Every eligible member receives exactly one message, none goes to a
do-not-contact or unsubscribed member, each send is logged once, and running
the send again sends nothing new.  Re-run the figure with::

    .venv/bin/pytest -q tests/test_campaign_mail_scale.py -p no:randomly -n 0 -s
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

import crmkit
from crmkit import And, CampaignEmail, Contact, Organization, SmtpSettings
from crmkit.core import changes
from crmkit.core.ids import uuid7
from crmkit.core.mail import campaign_email_id
from tests.conftest import FixedClock
from tests.smtp_server import smtp_server_process

MEMBERS = int(os.environ.get("CRMKIT_SCALE_MEMBERS", "10000"))


@pytest.mark.slow
def test_a_ten_thousand_member_send_reaches_each_eligible_member_exactly_once(
    tmp_path: Path, clock: FixedClock
) -> None:
    log = tmp_path / "received.tsv"
    with smtp_server_process(log) as port:
        settings = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=30)
        url = str(tmp_path / "crm.db")
        with crmkit.open(url, clock=clock, smtp=settings, synchronous="NORMAL") as crm:
            now = crm.now()
            old = crm.campaigns.create(name="Anterior")
            orgs, contacts, unsubscribed = [], [], []
            expected: set[str] = set()
            do_not_contact: set[str] = set()
            gone: set[str] = set()
            for n in range(MEMBERS):
                org, _ = changes.create(Organization, id=uuid7(), now=now, name=f"Org {n}")
                address = f"c{n}@org{n}.example.com"
                contact, _ = changes.create(
                    Contact,
                    id=uuid7(),
                    now=now,
                    first_name=f"C{n}",
                    email=address,
                    organization_id=org.id,
                    do_not_contact=n % 50 == 7,
                    language="en" if n % 2 else "es",
                )
                orgs.append(org)
                contacts.append(contact)
                if n % 50 == 7:
                    do_not_contact.add(address)
                elif n % 50 == 13:  # unsubscribed from an earlier campaign
                    gone.add(address)
                    record, _ = changes.create(
                        CampaignEmail,
                        id=campaign_email_id(old.id, contact.id),
                        now=now,
                        campaign_id=old.id,
                        contact_id=contact.id,
                        email=address,
                        sent_at=now,
                        unsubscribed_at=now,
                    )
                    unsubscribed.append(record)
                else:
                    expected.add(address)
            with crm.store.unit_of_work() as uow:
                uow.repository(Organization).add_many(orgs)
                uow.repository(Contact).add_many(contacts)
                uow.repository(CampaignEmail).add_many(unsubscribed)
                uow.commit()
            crm.templates.create(
                name="oferta",
                variants={
                    "es": {
                        "subject": "Oferta para {{ organization.name }}",
                        "text": "Hola {{ contact.first_name }}",
                    },
                    "en": {
                        "subject": "Offer for {{ organization.name }}",
                        "text": "Hi {{ contact.first_name }}",
                        "html": "<p>Hi {{ contact.first_name }}</p>",
                    },
                },
            )
            segment = crm.segments.create(name="todos", criteria=And())
            campaign = crm.campaigns.launch(
                crm.campaigns.create(name="Grande", kind="email", segment=segment)
            )
            assert MEMBERS == len(campaign.members)

            started = time.perf_counter()
            report = crm.campaigns.send(campaign, "oferta", sender="crm@example.com")
            seconds = time.perf_counter() - started
            print(f"\n{MEMBERS} members, {report.sent} sent in {seconds:.1f} s")

            received = Counter(_received(log))
            assert expected == set(received)
            assert {1} == set(received.values())
            assert not (set(received) & do_not_contact)
            assert not (set(received) & gone)
            assert (len(expected), ()) == (report.sent, report.failures)
            assert {"do_not_contact": len(do_not_contact), "unsubscribed": len(gone)} == dict(
                report.skipped
            )
            logged = crm.interactions.find(kind="email", limit=None)
            assert len(expected) == len(logged)
            assert len(expected) == len({i.contact_id for i in logged})
            assert len(expected) == crm.campaigns.results(campaign).email.sent

            again = crm.campaigns.send(campaign, "oferta", sender="crm@example.com")
            assert (0, len(expected)) == (again.sent, again.skipped["already_sent"])
            assert len(expected) == len(_received(log))
            assert len(expected) == crm.interactions.count(kind="email")


def _received(log: Path) -> list[str]:
    """The recipient of each message the server accepted."""
    time.sleep(0.2)  # the server writes its last line after answering
    return [line.split("\t", 1)[0] for line in log.read_text(encoding="utf-8").splitlines()]
