"""The mediator's page behind the signed SMS link: shows the case without the reporter's
contact or ID numbers, takes 接单 / 不接 / 已到场, refuses forged and expired links."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from bot.mediator_portal import setup_portal
from routing.handoff.links import sign_link
from store.db import Database
from store.incidents import IN_PROGRESS
from store.mediation import ACCEPTED, CASE_ON_SITE, DECLINED, OFFERED
from tests.test_mediation import KEY, Harness, shanghai


async def portal(db: Database, aiohttp_client, start=None):  # noqa: ANN001, ANN201
    h = Harness(db, start or shanghai(2026, 11, 23, 10, 0))
    app = web.Application()
    setup_portal(app, lambda: h.supervisor)
    return h, await aiohttp_client(app)


async def test_the_link_in_the_text_opens_the_case_and_takes_the_answers(
    db: Database,
    aiohttp_client,  # noqa: ANN001
) -> None:
    h, client = await portal(db, aiohttp_client)
    number = await h.report()
    await h.relay.run_once()
    path = "/m/" + h.sms.messages[0].params["link"].rsplit("/", 1)[1]

    page = await client.get(path)
    text = await page.text()
    assert page.status == 200 and number in text and "邻里纠纷" in text
    assert page.headers["Cache-Control"] == "no-store"
    assert "11月23日 12:00" in text and "接单" in text
    assert "13912345678" not in text and "139****5678" in text  # masked until accepted

    answer = await client.post(path + "/accept", allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == path
    case, (offer,) = await h.case(number)
    assert offer.state == ACCEPTED
    accepted = await (await client.get(path)).text()
    assert "已到场" in accepted and "13912345678" in accepted
    await client.post(path + "/arrive")
    case, (offer,) = await h.case(number)
    assert case.state == CASE_ON_SITE
    assert (await h.book.get(number)).status == IN_PROGRESS
    assert any("已到场" in note for note in await h.notes(number))


async def test_a_decline_passes_the_case_on_and_the_old_link_says_so(
    db: Database,
    aiohttp_client,  # noqa: ANN001
) -> None:
    h, client = await portal(db, aiohttp_client)
    number = await h.report()
    await h.relay.run_once()
    path = "/m/" + h.sms.messages[0].params["link"].rsplit("/", 1)[1]
    await client.post(path + "/decline")
    _, offers = await h.case(number)
    assert [o.state for o in offers] == [DECLINED, OFFERED] and len(h.sms.messages) == 2
    text = await (await client.get(path)).text()
    assert "已转交其他调解员" in text and "<button>" not in text
    await client.post(path + "/accept")  # too late: changes nothing
    _, offers = await h.case(number)
    assert [o.state for o in offers] == [DECLINED, OFFERED]


async def test_forged_expired_and_unknown_links_are_refused(
    db: Database,
    aiohttp_client,  # noqa: ANN001
) -> None:
    h, client = await portal(db, aiohttp_client)
    await h.report()
    await h.relay.run_once()
    token = h.sms.messages[0].params["link"].rsplit("/", 1)[1]
    ident, expires, _ = token.split(".")
    assert (await client.get(f"/m/{ident}.{expires}.AAAAAAAAAAAAAAAAAAAAAA")).status == 403
    assert (await client.post(f"/m/{ident}.{expires}.AAAA/accept")).status == 403
    h.clock.advance(days=8)
    assert (await client.get(f"/m/{token}")).status == 403
    unknown = sign_link(KEY, 999, h.clock() + timedelta(days=1))
    assert (await client.get(f"/m/{unknown}")).status == 404
