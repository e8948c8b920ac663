"""The mediator's page behind the signed SMS link: shows the case with ID numbers and phones
masked, takes 接单 / 不接 / 已到场, shows the reporter's phone in full only to the mediator the
case is assigned to and only audited, refuses forged and expired links."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.mediator_portal import NO_PHONE, setup_portal
from routing.handoff.contacts import (
    REGISTERED,
    REPORT,
    REVEAL_PHONE,
    AuditedPhones,
    consents_to_contact,
)
from routing.handoff.links import sign_link
from routing.identity import mask_phone
from store.db import Database
from store.incidents import IN_PROGRESS
from store.mediation import ACCEPTED, CASE_ON_SITE, DECLINED, OFFERED
from store.models import AuditEntry
from store.registrations import Identity, RegistrationStore
from tests.fakes import fake_identity
from tests.test_mediation import CIPHER, KEY, Harness, shanghai

PERSON = fake_identity(seed=31)
WRITTEN = "13912345678"  # the number in the harness's report text
CONTACT_TIME = {"answer": "given", "text": "工作日晚上7点后"}


async def portal(db: Database, aiohttp_client, start=None):  # noqa: ANN001, ANN201
    h = Harness(db, start or shanghai(2026, 11, 23, 10, 0))
    app = web.Application()
    setup_portal(app, lambda: h.supervisor, lambda: AuditedPhones.from_database(db, CIPHER))
    return h, await aiohttp_client(app)


def link_path(h: Harness, index: int = 0) -> str:
    return "/m/" + h.sms.messages[index].params["link"].rsplit("/", 1)[1]


async def reveals(db: Database) -> list[AuditEntry]:
    async with db.reader() as session:
        query = select(AuditEntry).where(AuditEntry.action == REVEAL_PHONE).order_by(AuditEntry.id)
        return list((await session.execute(query)).scalars())


async def test_the_link_in_the_text_opens_the_case_and_takes_the_answers(
    db: Database,
    aiohttp_client,  # noqa: ANN001
) -> None:
    h, client = await portal(db, aiohttp_client)
    number = await h.report()
    await h.relay.run_once()
    path = link_path(h)

    page = await client.get(path)
    text = await page.text()
    assert page.status == 200 and number in text and "邻里纠纷" in text
    assert page.headers["Cache-Control"] == "no-store"
    assert "11月23日 12:00" in text and "接单" in text
    assert WRITTEN not in text and "139****5678" in text
    assert "接单后可查看报警人联系电话" in text and "/reveal" not in text

    answer = await client.post(path + "/accept", allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == path
    case, (offer,) = await h.case(number)
    assert offer.state == ACCEPTED
    accepted = await (await client.get(path)).text()
    # No consent to be called and not registered: the number in the text stays masked.
    assert "已到场" in accepted and WRITTEN not in accepted and NO_PHONE in accepted
    await client.post(path + "/arrive")
    case, (offer,) = await h.case(number)
    assert case.state == CASE_ON_SITE
    assert (await h.book.get(number)).status == IN_PROGRESS
    assert any("已到场" in note for note in await h.notes(number))


async def test_the_assigned_mediator_sees_the_registered_phone_after_an_audited_reveal(
    db: Database,
    aiohttp_client,  # noqa: ANN001
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    h, client = await portal(db, aiohttp_client)
    await RegistrationStore(db, CIPHER).register(
        "web",
        "alice",
        Identity(name=PERSON.name, id_kind="resident_id", id_number=PERSON.id_number,
                 phone=PERSON.phone),
    )  # fmt: skip
    number = await h.report()
    await h.relay.run_once()
    path = link_path(h)

    # Offered, not yet taken: no number, no reveal, nothing audited.
    assert (await client.post(path + "/reveal")).status == 403
    assert await reveals(db) == []
    await client.post(path + "/accept")
    page = await (await client.get(path)).text()
    assert mask_phone(PERSON.phone) in page and PERSON.phone not in page
    assert "查看联系电话" in page and await reveals(db) == []

    shown = await client.post(path + "/reveal")
    text = await shown.text()
    assert shown.status == 200 and shown.headers["Cache-Control"] == "no-store"
    assert f"tel:{PERSON.phone}" in text and "本次查看已记录" in text
    assert WRITTEN not in text  # the registered phone, not the one in the text
    _, (offer,) = await h.case(number)
    (entry,) = await reveals(db)
    assert (entry.actor, entry.target_type, entry.target_id) == (
        f"mediator:{offer.mediator_id}",
        "incident",
        number,
    )
    assert entry.details == {"assignment_id": offer.id, "source": REGISTERED}

    await client.post(path + "/arrive")  # on site: still theirs
    assert PERSON.phone in await (await client.post(path + "/reveal")).text()
    assert len(await reveals(db)) == 2  # every look

    await h.book.cancel(number, "web", "alice", "已经和好了")
    await h.relay.run_once()
    assert (await client.post(path + "/reveal")).status == 403  # no longer assigned
    assert len(await reveals(db)) == 2
    assert PERSON.phone not in caplog.text and PERSON.phone not in h.sms.messages[-1].text


async def test_a_number_in_the_report_is_revealed_only_with_consent(
    db: Database,
    aiohttp_client,  # noqa: ANN001
) -> None:
    h, client = await portal(db, aiohttp_client)
    number = await h.report(contact_time=CONTACT_TIME)  # told us when to call: consent
    await h.relay.run_once()
    path = link_path(h)
    await client.post(path + "/accept")
    assert "139****5678" in await (await client.get(path)).text()
    assert f"tel:{WRITTEN}" in await (await client.post(path + "/reveal")).text()
    (entry,) = await reveals(db)
    assert entry.target_id == number and entry.details["source"] == REPORT

    refused = {"answer": "no", "text": "不同意"}
    other = await h.report(sender="bob", contact_time=CONTACT_TIME, contact_consent=refused)
    await h.relay.run_once()
    (sms,) = [m for m in h.sms.messages if other in m.text]
    other_path = "/m/" + sms.params["link"].rsplit("/", 1)[1]
    await client.post(other_path + "/accept")
    text = await (await client.post(other_path + "/reveal")).text()
    assert NO_PHONE in text and WRITTEN not in text
    _, (bob_offer,) = await h.case(other)
    assert (await reveals(db))[-1].details == {"assignment_id": bob_offer.id, "source": None}


def test_consent_to_be_contacted() -> None:
    assert consents_to_contact({"contact_consent": {"answer": "yes"}})
    assert not consents_to_contact(
        {"contact_consent": {"answer": "no"}, "contact_time": CONTACT_TIME}
    )
    assert consents_to_contact({"contact_time": CONTACT_TIME})
    assert not consents_to_contact({"contact_time": {"answer": "unknown"}})
    assert not consents_to_contact({})


async def test_a_decline_passes_the_case_on_and_the_old_link_says_so(
    db: Database,
    aiohttp_client,  # noqa: ANN001
) -> None:
    h, client = await portal(db, aiohttp_client)
    number = await h.report(contact_time=CONTACT_TIME)
    await h.relay.run_once()
    path = link_path(h)
    await client.post(path + "/decline")
    _, offers = await h.case(number)
    assert [o.state for o in offers] == [DECLINED, OFFERED] and len(h.sms.messages) == 2
    text = await (await client.get(path)).text()
    assert "已转交其他调解员" in text and "<button>" not in text
    await client.post(path + "/accept")  # too late: changes nothing
    _, offers = await h.case(number)
    assert [o.state for o in offers] == [DECLINED, OFFERED]
    await client.post(link_path(h, 1) + "/accept")  # the next mediator takes it
    assert (await client.post(path + "/reveal")).status == 403  # not the one who declined
    assert await reveals(db) == []


async def test_forged_expired_and_unknown_links_are_refused(
    db: Database,
    aiohttp_client,  # noqa: ANN001
) -> None:
    h, client = await portal(db, aiohttp_client)
    await h.report()
    await h.relay.run_once()
    token = link_path(h).rsplit("/", 1)[1]
    ident, expires, _ = token.split(".")
    assert (await client.get(f"/m/{ident}.{expires}.AAAAAAAAAAAAAAAAAAAAAA")).status == 403
    assert (await client.post(f"/m/{ident}.{expires}.AAAA/accept")).status == 403
    assert (await client.post(f"/m/{ident}.{expires}.AAAA/reveal")).status == 403
    h.clock.advance(days=8)
    assert (await client.get(f"/m/{token}")).status == 403
    unknown = sign_link(KEY, 999, h.clock() + timedelta(days=1))
    assert (await client.get(f"/m/{unknown}")).status == 404
    assert await reveals(db) == []
