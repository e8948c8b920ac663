"""Mediation handoff: cases, offers, SMS, timeouts, SLA escalation, over real 2026 dates and the
2027 fallback, on SQLite and PostgreSQL; time moves only by a controllable clock."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import inspect, select

from routing.adapters.sms import (
    MEDIATION_BOOKING,
    MEDIATION_CANCEL,
    MEDIATION_ON_DUTY,
    MEDIATION_REROUTED,
    HttpSmsGateway,
    LocalSmsOutbox,
    SmsDeliveryError,
    SmsReceipt,
)
from routing.handoff.links import BadLink, link_key, sign_link, verify_link
from routing.handoff.local_receivers import LOCAL_SMS, running_local_receiver
from routing.handoff.mediation import (
    ESCALATE,
    EXPIRE,
    NO_MEDIATOR,
    OFFER_NEXT,
    RETRY,
    SEND_SMS,
    SLA_BREACH,
    MediationAdapter,
    MediationDispatcher,
    MediationSupervisor,
    Step,
    decide,
    offer_key,
)
from routing.handoff.messages import build_message
from routing.handoff.relay import OutboxRelay
from routing.handoff.wiring import (
    build_mediation,
    build_relay,
    running_handoff,
    working_day_deadline,
)
from routing.mediators import EXAMPLE_FILE, Roster
from routing.notify import StoredNotifier
from routing.schedule import MediationSchedule
from store import migrate
from store.crypto import PiiCipher
from store.db import Database
from store.incidents import TRANSFERRED_MEDIATION, IncidentBook
from store.mediation import (
    ACCEPTED,
    BOOKING,
    CASE_CANCELLED,
    CASE_EXHAUSTED,
    CASE_OPEN,
    CASE_WAITING,
    DECLINED,
    EXPIRED,
    OFFERED,
    ON_DUTY,
    AssignmentView,
    MediationCaseView,
    MediationDesk,
)
from store.models import MediationAssignment
from store.notices import NoticeBoard
from store.outbox import MEDIATION, WORKORDER_12345, Outbox
from tests.support import Clock

CIPHER = PiiCipher(b"m" * 32)
SH = ZoneInfo("Asia/Shanghai")
KEY = b"k" * 32
DESCRIPTION = "楼上邻居天天半夜拖椅子，我叫张三，电话13912345678"


def shanghai(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


class Harness:
    """A book, an outbox relay with the mediation adapter, the supervisor, SMS and notices."""

    def __init__(self, db: Database, start: datetime, missing_years: list[int] | None = None):
        self.db = db
        self.clock = Clock(start)
        self.missing_years = missing_years if missing_years is not None else []
        self.schedule = MediationSchedule.from_file(on_missing_year=self.missing_years.append)
        calendar = self.schedule.calendar
        self.roster = Roster.from_file(EXAMPLE_FILE).with_calendar(calendar)
        self.sms = LocalSmsOutbox(None)
        self.book = IncidentBook(db, CIPHER, now=self.clock)
        self.desk = MediationDesk(db, now=self.clock)
        self.notices = NoticeBoard(db, CIPHER, now=self.clock)
        self.escalations: list[str] = []
        self.dispatcher = MediationDispatcher(
            self.desk,
            self.roster,
            self.schedule,
            self.sms,
            incidents=self.book,
            link_key=KEY,
            public_url="https://alarm.example",
            notifier=StoredNotifier(self.notices),
            clock=self.clock,
            on_escalation=self.escalations.append,
        )
        self.adapter = MediationAdapter(self.dispatcher)
        self.supervisor = MediationSupervisor(self.dispatcher)
        self.relay = OutboxRelay(
            Outbox(db, CIPHER, now=self.clock),
            {MEDIATION: self.adapter},
            incidents=self.book,
            clock=self.clock,
            jitter=lambda cap: cap,
        )

    async def report(
        self, district: str | None = "黄浦区", sender: str = "alice", **answers: object
    ) -> str:
        record = await self.book.open_draft(
            "web",
            sender,
            route="mediation",
            category="neighbor",
            urgency="normal",
            call_110_now=False,
            aggression=False,
            emergency=False,
            verified=True,
            details={
                "answers": {"description": {"answer": "given", "text": DESCRIPTION}, **answers}
            },
            missing=[],
            completeness=0.8,
            district=district,
        )
        await self.book.submit(record.number)
        return record.number

    async def case(self, number: str) -> tuple[MediationCaseView, list[AssignmentView]]:
        (case,) = await self.desk.cases_for(number)
        return case, await self.desk.assignments(case.id)

    async def notes(self, number: str) -> list[str]:
        return [event.note or "" for event in await self.book.timeline(number)]


@pytest.fixture
def harness_at(db: Database):  # noqa: ANN201
    def make(start: datetime, **kwargs: object) -> Harness:
        return Harness(db, start, **kwargs)  # type: ignore[arg-type]

    return make


# --- inside working hours: the on-duty mediator and the 2-hour clock ---


async def test_a_weekday_case_goes_to_the_districts_duty_mediator_with_an_on_site_clock(
    harness_at,  # noqa: ANN001
) -> None:
    h = harness_at(shanghai(2026, 11, 23, 10, 0))  # a Monday
    number = await h.report()
    assert await h.relay.run_once() == 1

    case, (offer,) = await h.case(number)
    assert (case.mode, case.state, case.district) == (ON_DUTY, CASE_OPEN, "黄浦区")
    assert case.sla_due_at == shanghai(2026, 11, 23, 12, 0)
    assert offer.state == OFFERED and offer.mediator_id in {"hp-01", "hp-02"}
    assert offer.answer_due_at == shanghai(2026, 11, 23, 10, 15)

    (sms,) = h.sms.messages
    mediator = h.roster.get(offer.mediator_id)
    assert sms.phone == mediator.phone and sms.template_id == MEDIATION_ON_DUTY
    assert number in sms.text and "11月23日12:00" in sms.text
    assert "https://alarm.example/m/" in sms.text
    assert "邻居" not in sms.text and "张三" not in sms.text and "13912345678" not in sms.text
    token = sms.params["link"].rsplit("/", 1)[1]
    assert verify_link(KEY, token, h.clock()).assignment_id == offer.id

    record = await h.book.get(number)
    assert record.status == TRANSFERRED_MEDIATION
    notes = await h.notes(number)
    assert any("工作时间内" in note and "到场" in note for note in notes)
    assert any(offer.mediator_id in note for note in notes)
    (notice,) = await h.notices.take("web", "alice")
    assert number in notice.text and "11月23日12:00前到场" in notice.text
    assert await h.notices.take("web", "alice") == []


async def test_a_redelivered_handoff_opens_no_second_case_and_sends_no_second_text(
    harness_at,  # noqa: ANN001
) -> None:
    h = harness_at(shanghai(2026, 11, 23, 10, 0))
    number = await h.report()
    await h.relay.run_once()
    case, offers = await h.case(number)
    record = await h.book.get(number)
    message = build_message(
        record,
        target=MEDIATION,
        kind="create",
        idempotency_key=case.handoff_key,
        console_base_url="http://x",
    )
    delivery = await h.adapter.deliver(message)
    assert delivery.duplicate and delivery.external_ref == f"mediation-{case.id}"
    assert len(await h.desk.cases_for(number)) == 1
    assert len(await h.desk.assignments(case.id)) == 1 and len(h.sms.messages) == 1


async def test_an_unanswered_offer_goes_to_the_next_mediator_with_the_same_deadline(
    harness_at,  # noqa: ANN001
) -> None:
    h = harness_at(shanghai(2026, 11, 23, 10, 0))
    number = await h.report()
    await h.relay.run_once()
    h.clock.advance(minutes=14)
    assert await h.supervisor.run_once() == []
    h.clock.advance(minutes=2)
    steps = await h.supervisor.run_once()
    assert [s.action for s in steps] == [EXPIRE, OFFER_NEXT]

    case, (first, second) = await h.case(number)
    assert first.state == EXPIRED and second.state == OFFERED
    assert {first.mediator_id, second.mediator_id} == {"hp-01", "hp-02"}
    assert case.sla_due_at == shanghai(2026, 11, 23, 12, 0)  # the citizen's clock keeps running
    assert [m.phone for m in h.sms.messages] == [
        h.roster.get(first.mediator_id).phone,
        h.roster.get(second.mediator_id).phone,
    ]
    assert await h.supervisor.run_once() == []  # nothing more until the next deadline


async def test_a_decline_asks_the_next_mediator_at_once_then_a_neighbouring_district(
    harness_at,  # noqa: ANN001
) -> None:
    h = harness_at(shanghai(2026, 11, 23, 10, 0))
    number = await h.report()
    await h.relay.run_once()
    for _ in range(2):
        _, offers = await h.case(number)
        assert await h.supervisor.answer(offers[-1].id, accepted=False)
    case, offers = await h.case(number)
    assert [o.state for o in offers] == [DECLINED, DECLINED, OFFERED]
    assert offers[2].district != "黄浦区"  # both 黄浦 mediators declined: a neighbour's
    assert any("相邻" in note for note in await h.notes(number))
    assert not await h.supervisor.answer(offers[0].id, accepted=True)  # too late for that one


async def test_an_sla_breach_escalates_once_with_a_note_and_the_metric_hook(
    harness_at,  # noqa: ANN001
) -> None:
    h = harness_at(shanghai(2026, 11, 23, 16, 30))  # the clock runs past closing time
    number = await h.report()
    await h.relay.run_once()
    case, (offer,) = await h.case(number)
    assert case.sla_due_at == shanghai(2026, 11, 23, 18, 30)
    assert await h.supervisor.answer(offer.id, accepted=True)
    case, (offer,) = await h.case(number)
    assert (case.state, offer.state) == (ACCEPTED, ACCEPTED)
    notices = await h.notices.take("web", "alice")
    assert "已有人民调解员接单" in notices[-1].text

    h.clock.advance(hours=1, minutes=59)
    assert await h.supervisor.run_once() == []
    h.clock.advance(minutes=1)
    assert [s.action for s in await h.supervisor.run_once()] == [ESCALATE]
    h.clock.advance(hours=3)
    assert await h.supervisor.run_once() == []
    assert h.escalations == [SLA_BREACH]
    assert sum("【升级】" in note for note in await h.notes(number)) == 1


async def test_on_site_in_time_stops_the_clock(harness_at) -> None:  # noqa: ANN001
    h = harness_at(shanghai(2026, 11, 23, 10, 0))
    number = await h.report()
    await h.relay.run_once()
    _, (offer,) = await h.case(number)
    await h.supervisor.answer(offer.id, accepted=True)
    h.clock.advance(hours=1)
    assert await h.supervisor.arrive(offer.id)
    assert not await h.supervisor.arrive(offer.id)
    h.clock.advance(hours=5)
    assert await h.supervisor.run_once() == [] and h.escalations == []


async def decline_all(h: Harness, number: str) -> int:
    """Every mediator asked declines at once, until the round runs out; how many were asked."""
    for asked in range(len(h.roster) + 1):
        case, offers = await h.case(number)
        live = [o for o in offers if o.live]
        if case.state != CASE_OPEN or not live:
            return asked
        h.clock.advance(minutes=1)
        assert await h.supervisor.answer(live[0].id, accepted=False)
    raise AssertionError("the round never ran out")


async def test_nobody_taking_it_retries_at_the_next_working_day_then_escalates(
    harness_at,  # noqa: ANN001
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = harness_at(shanghai(2026, 9, 30, 10, 0))  # the Wednesday before National Day
    number = await h.report()
    await h.relay.run_once()
    first_round = await decline_all(h, number)
    case, offers = await h.case(number)
    assert (case.state, case.round, case.escalation) == (CASE_WAITING, 1, None)
    assert case.retry_at == shanghai(2026, 10, 8, 9, 0)  # after the 1–7 October holiday
    assert len(offers) == first_round and len({o.mediator_id for o in offers}) == first_round
    assert any("10月8日09:00起从值班名单第一位重新联系" in n for n in await h.notes(number))
    notices = [n.text for n in await h.notices.take("web", "alice")]
    assert "再次为您联系调解员" in notices[-1] and "10月8日09:00" in notices[-1]
    assert h.escalations == []

    # The citizen's clock keeps running while the case waits: the on-site deadline escalates.
    h.clock.moment = shanghai(2026, 9, 30, 12, 0)
    assert [s.action for s in await h.supervisor.run_once()] == [ESCALATE]
    h.clock.moment = shanghai(2026, 10, 8, 8, 59)
    assert await h.supervisor.run_once() == []

    h.clock.moment = shanghai(2026, 10, 8, 9, 0)
    assert [s.action for s in await h.supervisor.run_once()] == [RETRY]
    case, offers = await h.case(number)
    assert (case.state, case.round) == (CASE_OPEN, 2) and case.retry_at is None
    (fresh,) = [o for o in offers if o.live]
    assert fresh.round == 2 and fresh.district == "黄浦区"  # from the top of that day's rota
    assert h.roster.get(fresh.mediator_id) == h.roster.on_duty("黄浦区", h.clock())[0]
    assert (
        h.sms.messages[-1]
        .params["link"]
        .endswith(sign_link(KEY, fresh.id, fresh.offered_at + timedelta(days=7)))
    )

    with caplog.at_level("WARNING", logger="routing.handoff.mediation"):
        assert await decline_all(h, number) > 0
    case, offers = await h.case(number)
    assert (case.state, case.escalation) == (CASE_EXHAUSTED, NO_MEDIATOR)
    assert h.escalations == [SLA_BREACH, NO_MEDIATOR]
    assert any("两轮联系均未接单" in n for n in await h.notes(number))
    logged = [r.getMessage() for r in caplog.records if "escalated: no_mediator" in r.getMessage()]
    assert logged == [f"mediation case {case.id} (incident {number}) escalated: no_mediator"]
    for person in ("张三", "13912345678", *(m.phone for m in h.roster.mediators)):
        assert person not in caplog.text
    h.clock.advance(days=3)
    assert await h.supervisor.run_once() == []  # a person acts now, not the supervisor


async def test_a_case_nobody_takes_on_a_friday_retries_on_the_make_up_saturday(
    harness_at,  # noqa: ANN001
) -> None:
    h = harness_at(shanghai(2026, 2, 13, 16, 50))
    number = await h.report()
    await h.relay.run_once()
    await decline_all(h, number)
    case, _ = await h.case(number)
    assert case.state == CASE_WAITING and case.retry_at == shanghai(2026, 2, 14, 9, 0)
    h.clock.moment = shanghai(2026, 2, 14, 9, 0)
    steps = [s.action for s in await h.supervisor.run_once()]
    assert steps == [RETRY, ESCALATE]  # the new round, and the deadline passed overnight
    case, offers = await h.case(number)
    assert case.state == CASE_OPEN and offers[-1].round == 2 and offers[-1].live
    assert h.escalations == [SLA_BREACH]


async def test_two_supervisors_start_the_next_round_once(
    harness_at,  # noqa: ANN001
    database_url: str,
) -> None:
    h = harness_at(shanghai(2026, 11, 23, 10, 0))
    number = await h.report()
    await h.relay.run_once()
    await decline_all(h, number)
    other_db = Database(database_url)
    try:
        other = Harness(other_db, shanghai(2026, 11, 24, 9, 0))
        other.dispatcher.sms = h.sms
        h.clock.moment = other.clock.moment
        await asyncio.gather(h.supervisor.run_once(), other.supervisor.run_once())
    finally:
        await other_db.dispose()
    case, offers = await h.case(number)
    assert case.round == 2 and [o.round for o in offers if o.live] == [2]
    assert sum("第2轮" in note for note in await h.notes(number)) == 1


async def test_operators_list_cases_with_state_deadline_and_escalation_masked(
    harness_at,  # noqa: ANN001
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.cli import main, mediation_line

    h = harness_at(shanghai(2026, 11, 23, 10, 0))
    exhausted = await h.report()
    await h.relay.run_once()
    await decline_all(h, exhausted)
    h.clock.moment = shanghai(2026, 11, 24, 9, 0)
    await h.supervisor.run_once()  # round 2 (and the passed on-site deadline escalates)
    await decline_all(h, exhausted)
    taken = await h.report(sender="bob")
    await h.relay.run_once()
    _, (offer,) = await h.case(taken)
    await h.supervisor.answer(offer.id, accepted=True)
    h.clock.advance(hours=3)  # and then nobody came

    monkeypatch.setenv("ALARMBOT_ENV", "dev")
    monkeypatch.setenv("ALARMBOT_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert await asyncio.to_thread(main, ["mediation", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "exhausted：1" in lines[0] and "accepted：1" in lines[0] and "waiting：0" in lines[0]
    (gone,) = [line for line in lines if exhausted in line]
    assert "需人工处理" in gone and "第2轮" in gone and "升级 no_mediator 11-24 09:" in gone
    assert "到场时限 11-23 12:00" in gone
    (late,) = [line for line in lines if taken in line]
    assert f"调解员 {offer.mediator_id}（accepted）" in late and "到场时限 11-24 11:15" in late
    for person in ("张三", "13912345678", *(m.phone for m in h.roster.mediators)):
        assert person not in out

    assert await asyncio.to_thread(main, ["mediation", "list", "--status", "exhausted"]) == 0
    only = capsys.readouterr().out
    assert exhausted in only and taken not in only

    # Overdue is judged at the operator's now (here the test clock, not the wall clock).
    case, offers = await h.case(taken)
    assert "【已超时】" in mediation_line(case, offers[-1], now=h.clock())
    assert "【已超时】" not in mediation_line(case, offers[-1], now=shanghai(2026, 11, 24, 11, 14))
    await h.supervisor.arrive(offers[-1].id)
    case, offers = await h.case(taken)
    assert "【已超时】" not in mediation_line(case, offers[-1], now=h.clock())  # on site


# --- outside working hours: push and a booking task, over real 2026 dates ---


@pytest.mark.parametrize(
    ("start", "book_at", "why"),
    [
        (shanghai(2026, 11, 28, 10, 0), shanghai(2026, 11, 30, 9, 0), "周六"),  # a weekend
        (shanghai(2026, 11, 23, 20, 0), shanghai(2026, 11, 24, 9, 0), "已过工作时间"),
        (shanghai(2026, 2, 17, 10, 0), shanghai(2026, 2, 24, 9, 0), "春节"),  # Spring Festival
    ],
)
async def test_outside_hours_the_mediator_gets_a_push_and_a_booking_task(
    harness_at,  # noqa: ANN001
    start: datetime,
    book_at: datetime,
    why: str,
) -> None:
    h = harness_at(start)
    number = await h.report()
    await h.relay.run_once()
    case, (offer,) = await h.case(number)
    assert (case.mode, case.sla_due_at, case.rota_at) == (BOOKING, None, book_at)
    assert case.booking_due_at == book_at.replace(hour=17)
    assert offer.answer_due_at == book_at + timedelta(minutes=30)
    assert h.roster.get(offer.mediator_id) in h.roster.on_duty("黄浦区", book_at)
    (sms,) = h.sms.messages
    assert sms.template_id == MEDIATION_BOOKING
    assert f"{book_at.month}月{book_at.day}日09:00起联系报警人" in sms.text
    assert any(why in note and "预约" in note for note in await h.notes(number))
    (notice,) = await h.notices.take("web", "alice")
    assert "非工作时间" in notice.text

    # Nobody answers overnight: nothing happens until half an hour after the opening.
    h.clock.moment = book_at + timedelta(minutes=29)
    assert await h.supervisor.run_once() == []
    h.clock.moment = book_at + timedelta(minutes=31)
    assert [s.action for s in await h.supervisor.run_once()] == [EXPIRE, OFFER_NEXT]
    # Not booked by closing time on the opening day: escalated.
    _, offers = await h.case(number)
    await h.supervisor.answer(offers[-1].id, accepted=True)
    h.clock.moment = book_at.replace(hour=17)
    assert [s.action for s in await h.supervisor.run_once()] == [ESCALATE]
    assert h.escalations == ["booking_overdue"]


async def test_a_make_up_saturday_is_a_working_day_with_mondays_rota(
    harness_at,  # noqa: ANN001
) -> None:
    h = harness_at(shanghai(2026, 2, 28, 10, 0))  # 调休: a Saturday that is a working day
    number = await h.report()
    await h.relay.run_once()
    case, (offer,) = await h.case(number)
    assert case.mode == ON_DUTY and case.sla_due_at == shanghai(2026, 2, 28, 12, 0)
    assert h.roster.get(offer.mediator_id) in h.roster.on_duty("黄浦区", shanghai(2026, 3, 2, 10))
    assert h.sms.messages[0].template_id == MEDIATION_ON_DUTY


async def test_2027_without_holiday_data_falls_back_to_monday_to_friday_loudly(
    harness_at,  # noqa: ANN001
) -> None:
    h = harness_at(shanghai(2027, 1, 1, 10, 0))  # a Friday: open under the fallback
    number = await h.report()
    await h.relay.run_once()
    case, (offer,) = await h.case(number)
    assert case.mode == ON_DUTY and case.sla_due_at == shanghai(2027, 1, 1, 12, 0)
    assert 2027 in h.missing_years
    assert any("缺少2027年节假日数据" in note for note in await h.notes(number))

    h2 = harness_at(shanghai(2027, 1, 2, 10, 0), missing_years=[])  # Saturday → Monday
    number2 = await h2.report(sender="bob")
    await h2.relay.run_once()
    case2, _ = await h2.case(number2)
    assert case2.mode == BOOKING and case2.rota_at == shanghai(2027, 1, 4, 9, 0)


async def test_a_district_nobody_covers_goes_to_a_neighbour(harness_at) -> None:  # noqa: ANN001
    h = harness_at(shanghai(2026, 11, 23, 10, 0))
    number = await h.report(district="金山区")  # nobody in the example roster, on purpose
    await h.relay.run_once()
    _, (offer,) = await h.case(number)
    assert offer.reach == "neighbour" and offer.district in {"松江区", "奉贤区"}


# --- cancel and failures ---


async def test_a_withdrawn_report_tells_the_mediator_and_closes_the_case(
    harness_at,  # noqa: ANN001
) -> None:
    h = harness_at(shanghai(2026, 11, 23, 10, 0))
    number = await h.report()
    await h.relay.run_once()
    await h.book.cancel(number, "web", "alice", "已经和好了")
    await h.relay.run_once()
    case, (offer,) = await h.case(number)
    assert case.state == CASE_CANCELLED and offer.state == "cancelled"
    assert [m.template_id for m in h.sms.messages] == [MEDIATION_ON_DUTY, MEDIATION_CANCEL]
    assert "已经和好了" not in h.sms.messages[1].text
    h.clock.advance(hours=5)
    assert await h.supervisor.run_once() == []


async def test_a_dispute_moved_to_110_tells_the_mediator_where_it_went(
    harness_at,  # noqa: ANN001
) -> None:
    h = harness_at(shanghai(2026, 11, 23, 10, 0))
    number = await h.report()
    await h.relay.run_once()
    await h.book.update(number, route="police", category="assault", aggression=True)
    await h.relay.run_once()  # the mediation cancel (the CAD create has no adapter here)
    case, (offer,) = await h.case(number)
    assert case.state == CASE_CANCELLED
    last = h.sms.messages[-1]
    assert last.template_id == MEDIATION_REROUTED and "已转110警情处理" in last.text
    assert "撤销" not in last.text


class FlakySms:
    """Fails the first `failures` sends, then records like the local outbox."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, str]] = []

    async def send(
        self, phone: str, template_id: str, params: Mapping[str, str], *, key: str
    ) -> SmsReceipt:
        if self.failures:
            self.failures -= 1
            raise SmsDeliveryError("SMS gateway answered HTTP 503", retryable=True, status=503)
        self.sent.append((phone, template_id))
        return SmsReceipt(message_id=f"m{len(self.sent)}", gateway="test")


async def test_a_failed_text_is_retried_by_the_relay_and_sent_exactly_once(
    harness_at,  # noqa: ANN001
) -> None:
    h = harness_at(shanghai(2026, 11, 23, 10, 0))
    flaky = FlakySms(failures=2)
    h.dispatcher.sms = flaky
    number = await h.report()
    for _ in range(3):
        await h.relay.run_once()
        h.clock.advance(seconds=30)
    assert len(flaky.sent) == 1
    case, (offer,) = await h.case(number)
    assert offer.sms_ref == "m1" and offer.sms_sent_at is not None
    assert sum("已通知人民调解员" in note for note in await h.notes(number)) == 1
    assert len(await h.notices.take("web", "alice")) == 1
    assert (await h.book.get(number)).status == TRANSFERRED_MEDIATION
    del case


class KilledWorker(BaseException):
    """The process dies: nothing after the send runs (no except, no finally of ours)."""


class DiesAfterSending:
    """Sends through the real gateway, then the worker 'dies' before recording it."""

    def __init__(self, gateway: HttpSmsGateway) -> None:
        self.gateway = gateway

    async def send(
        self, phone: str, template_id: str, params: Mapping[str, str], *, key: str
    ) -> SmsReceipt:
        await self.gateway.send(phone, template_id, params, key=key)
        raise KilledWorker


async def test_a_worker_killed_between_text_and_record_resends_under_the_same_key(
    harness_at,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    h = harness_at(shanghai(2026, 11, 23, 10, 0))
    async with running_local_receiver(LOCAL_SMS, tmp_path, id_field="message_id") as running:
        gateway = HttpSmsGateway(running.base_url, "sms-key", timeout_s=5)
        try:
            h.dispatcher.sms = DiesAfterSending(gateway)
            number = await h.report()
            with pytest.raises(KilledWorker):
                await h.relay.run_once()
            _, (offer,) = await h.case(number)
            assert offer.sms_ref == "sending"  # claimed, sent, never recorded

            h.dispatcher.sms = gateway  # the next worker
            h.clock.advance(minutes=1)
            assert await h.supervisor.run_once() == []  # the claim may still be live
            h.clock.advance(minutes=1, seconds=1)
            assert [s.action for s in await h.supervisor.run_once()] == [SEND_SMS]
            h.clock.advance(minutes=2)
            assert await h.relay.run_once() == 1  # the outbox lease ran out: redelivered
        finally:
            await gateway.close()
    receiver = running.receiver
    _, (offer,) = await h.case(number)
    assert receiver.logical_count == 1 and [r.status for r in receiver.requests] == [201, 409]
    (key,) = set(receiver.keys())
    assert offer.sms_ref == receiver.requests[0].reference and offer.sms_sent_at is not None
    assert key == offer_key(MEDIATION_ON_DUTY, (await h.case(number))[0], offer)


async def test_two_supervisors_on_two_engines_expire_and_offer_once(
    harness_at,  # noqa: ANN001
    database_url: str,
) -> None:
    h = harness_at(shanghai(2026, 11, 23, 10, 0))
    number = await h.report()
    await h.relay.run_once()
    other_db = Database(database_url)
    try:
        other = Harness(other_db, h.clock())
        other.sms = h.sms
        other.dispatcher.sms = h.sms
        h.clock.advance(minutes=16)
        other.clock.moment = h.clock.moment
        await asyncio.gather(h.supervisor.run_once(), other.supervisor.run_once())
    finally:
        await other_db.dispose()
    _, offers = await h.case(number)
    assert [o.state for o in offers] == [EXPIRED, OFFERED]
    assert len(h.sms.messages) == 2


# --- the pure decision ---


def _case(**overrides: object) -> MediationCaseView:
    at = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
    fields: dict[str, object] = {
        "id": 1,
        "incident_id": 1,
        "number": "2026112300001",
        "handoff_key": "k",
        "mode": ON_DUTY,
        "district": "黄浦区",
        "state": CASE_OPEN,
        "received_at": at,
        "rota_at": at,
        "sla_due_at": at + timedelta(hours=2),
        "booking_due_at": None,
        "escalated_at": None,
        "escalation": None,
    }
    fields.update(overrides)
    return MediationCaseView(**fields)  # type: ignore[arg-type]


def _offer(ident: int, state: str = OFFERED, sms_ref: str | None = "s") -> AssignmentView:
    at = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
    return AssignmentView(
        ident, 1, f"m{ident}", "黄浦区", "district", state, at, at + timedelta(minutes=15),
        None, None, sms_ref, None,
    )  # fmt: skip


def test_decide_covers_texts_timeouts_next_offers_and_deadlines() -> None:
    at = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
    assert decide(_case(), [], at) == [Step(OFFER_NEXT)]
    assert decide(_case(), [_offer(1)], at) == []
    assert decide(_case(), [_offer(1, sms_ref=None)], at) == [Step(SEND_SMS, 1)]
    later = at + timedelta(minutes=15)
    assert decide(_case(), [_offer(1)], later) == [Step(EXPIRE, 1), Step(OFFER_NEXT)]
    assert decide(_case(), [_offer(1, DECLINED)], at) == [Step(OFFER_NEXT)]
    accepted = _case(state=ACCEPTED)
    assert decide(accepted, [_offer(1, ACCEPTED)], later) == []
    breach = at + timedelta(hours=2)
    assert decide(accepted, [_offer(1, ACCEPTED)], breach) == [Step(ESCALATE, reason=SLA_BREACH)]
    assert decide(_case(state=ACCEPTED, escalated_at=breach), [_offer(1, ACCEPTED)], breach) == []
    assert decide(_case(state=CASE_CANCELLED), [], breach) == []
    waiting = _case(state=CASE_WAITING, retry_at=at + timedelta(hours=20))
    assert decide(waiting, [_offer(1, DECLINED)], at) == []  # no offer while it waits
    assert decide(waiting, [], breach) == [Step(ESCALATE, reason=SLA_BREACH)]
    retry = at + timedelta(hours=20)
    assert decide(replace(waiting, escalated_at=breach), [], retry) == [Step(RETRY)]
    assert decide(_case(state=CASE_EXHAUSTED), [], retry) == []
    booking = _case(mode=BOOKING, sla_due_at=None, booking_due_at=at + timedelta(hours=8))
    assert decide(booking, [_offer(1, ACCEPTED)], at + timedelta(hours=8)) == [
        Step(ESCALATE, reason="booking_overdue")
    ]


# --- links, notices, migration ---


def test_mediator_links_are_signed_and_expire() -> None:
    now = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
    token = sign_link(KEY, 42, now + timedelta(days=7))
    assert verify_link(KEY, token, now).assignment_id == 42
    forged = token.replace("42.", "43.", 1)
    for bad in (forged, token + "x", "42.x.y", "", token.rsplit(".", 1)[0]):
        with pytest.raises(BadLink):
            verify_link(KEY, bad, now)
    with pytest.raises(BadLink):
        verify_link(b"other" * 8, token, now)
    with pytest.raises(BadLink):
        verify_link(KEY, token, now + timedelta(days=7))
    derived = link_key({}, CIPHER)
    assert derived == link_key({}, CIPHER) and derived != link_key({}, PiiCipher(b"n" * 32))
    assert link_key({"ALARMBOT_LINK_KEY": "s" * 32}, CIPHER) == b"s" * 32
    with pytest.raises(ValueError):
        link_key({"ALARMBOT_LINK_KEY": "short"}, CIPHER)


async def test_notices_are_sealed_per_sender_and_handed_out_once(db: Database) -> None:
    board = NoticeBoard(db, CIPHER)
    await board.post("web", "alice", "您的报警已转交")
    await board.post("web", "bob", "别人的")
    first, second = await asyncio.gather(board.take("web", "alice"), board.take("web", "alice"))
    assert [n.text for n in first + second] == ["您的报警已转交"]
    assert [n.text for n in await board.take("web", "bob")] == ["别人的"]


def test_migration_0006_goes_down_and_up_again(database_url: str) -> None:
    def tables() -> set[str]:
        async def read() -> set[str]:
            database = Database(database_url)
            try:
                async with database.engine.connect() as conn:
                    return await conn.run_sync(lambda s: set(inspect(s).get_table_names()))
            finally:
                await database.dispose()

        return asyncio.run(read())

    ours = {"mediation_cases", "mediation_assignments", "citizen_notices"}
    assert ours <= tables()
    migrate.downgrade(database_url, "0005_wechat")
    assert not ours & tables() and "outbox" in tables()
    migrate.upgrade(database_url)
    assert ours <= tables()


async def test_an_assignment_row_holds_no_personal_data(harness_at) -> None:  # noqa: ANN001
    h = harness_at(shanghai(2026, 11, 23, 10, 0))
    await h.report()
    await h.relay.run_once()
    async with h.db.reader() as session:
        row = (await session.execute(select(MediationAssignment))).scalar_one()
    values = " ".join(str(getattr(row, c.key)) for c in MediationAssignment.__table__.columns)
    assert "1380000" not in values and "张三" not in values


# --- wiring ---


async def test_running_handoff_runs_mediation_in_development(db: Database, tmp_path: Path) -> None:
    env = {"ALARMBOT_ENV": "dev", "OUTBOX_POLL_S": "0.05", "MEDIATION_POLL_S": "0.05"}
    h = Harness(db, datetime.now(timezone.utc))
    async with running_handoff(db, CIPHER, env, tmp_path) as handoff:
        assert MEDIATION in handoff.relay.adapters and handoff.mediation is not None
        number = await h.report()
        assert handoff.local_sms_url is not None  # dev: the LOCAL gateway, over HTTP
        texts = tmp_path / "local-receivers" / "local-sms-gateway.jsonl"
        for _ in range(400):
            if (await h.desk.cases_for(number)) and texts.exists():
                break
            await asyncio.sleep(0.01)
    (case,) = await h.desk.cases_for(number)
    (offer,) = await h.desk.assignments(case.id)
    assert offer.sms_ref is not None and offer.sms_ref.startswith("local-sms-gateway-")
    assert number in texts.read_text(encoding="utf-8")
    assert await NoticeBoard(db, CIPHER).take("web", "alice")


def test_in_prod_mediation_waits_for_a_roster_and_an_sms_gateway(db: Database) -> None:
    book = IncidentBook(db, CIPHER)
    prod = {"ALARMBOT_ENV": "prod"}
    assert build_mediation(db, CIPHER, prod, Path("var"), incidents=book) is None
    with_roster = {**prod, "MEDIATORS_FILE": str(EXAMPLE_FILE)}
    assert build_mediation(db, CIPHER, with_roster, Path("var"), incidents=book) is None
    full = {**with_roster, "SMS_URL": "https://sms.example", "MEDIATION_POLL_S": "5"}
    supervisor = build_mediation(db, CIPHER, full, Path("var"), incidents=book)
    assert supervisor is not None and supervisor.interval_s == 5
    assert supervisor.dispatcher.sms.url == "https://sms.example/messages"

    missing: list[int] = []
    dev = build_mediation(
        db, CIPHER, {}, Path("var"), incidents=book, on_missing_year=missing.append
    )
    assert dev is not None and dev.dispatcher.schedule.is_open(shanghai(2027, 3, 1, 10, 0))
    assert missing == [2027]


def test_12345_deadlines_count_working_days_from_the_calendar(db: Database) -> None:
    relay = build_relay(db, CIPHER, {}, local_urls={WORKORDER_12345: "http://127.0.0.1:1/x"})
    deadline = relay.adapters[WORKORDER_12345]._deadline
    # 2026-02-13 (Fri) + 2 working days: 02-14 is a 调休 Saturday, then the Spring Festival
    # until 02-23, so 02-24; closing time 17:00.
    assert deadline(shanghai(2026, 2, 13, 20, 0), "construction_noise") == shanghai(
        2026, 2, 24, 17, 0
    )
    assert deadline(shanghai(2026, 11, 23, 10, 0), "property") == shanghai(2026, 11, 30, 17, 0)
    fallback = working_day_deadline(MediationSchedule.from_file())  # 2027: Mon–Fri
    assert fallback(shanghai(2027, 1, 1, 10), "x") == shanghai(2027, 1, 12, 17, 0)


def test_mediators_import_checks_installs_and_is_then_used(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    db: Database,
) -> None:
    from bot.cli import main

    var = tmp_path / "var"
    monkeypatch.setenv("ALARMBOT_VAR_DIR", str(var))
    monkeypatch.setenv("ALARMBOT_ENV", "dev")
    bad = tmp_path / "bad.yml"
    bad.write_text("mediators:\n  - id: a\n    phone: '123'\n    districts: [火星区]\n", "utf-8")
    assert main(["mediators", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "火星区" in err and "phone" in err and not (var / "mediators.yml").exists()

    assert main(["mediators", "import", "--check", str(EXAMPLE_FILE)]) == 0
    assert not (var / "mediators.yml").exists()
    assert main(["mediators", "import", str(EXAMPLE_FILE)]) == 0
    out = capsys.readouterr().out
    assert "名册检查通过" in out and "金山区" in out and "1380000" not in out
    assert (var / "mediators.yml").read_bytes() == EXAMPLE_FILE.read_bytes()

    supervisor = build_mediation(
        db, CIPHER, {"ALARMBOT_ENV": "prod", "SMS_URL": "https://sms.example"}, var,
        incidents=IncidentBook(db, CIPHER),
    )  # fmt: skip
    assert supervisor is not None and len(supervisor.dispatcher.roster) == len(
        Roster.from_file(EXAMPLE_FILE)
    )
