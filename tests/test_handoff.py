"""Handoffs end to end: messages, HTTP adapters against LOCAL stand-in receivers on 127.0.0.1,
and the outbox relay (retries, dead letters, leases, two relays at once) on SQLite and
PostgreSQL. Time is a settable clock; nothing asserts on how long anything took."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from routing.handoff.adapters import (
    Delivery,
    HandoffError,
    HttpCadAdapter,
    HttpWorkOrderAdapter,
    calendar_deadline,
    eido_body,
    workorder_body,
)
from routing.handoff.local_receivers import (
    LOCAL_CAD,
    LOCAL_WORKORDER,
    RunningReceiver,
    running_local_receiver,
)
from routing.handoff.messages import Contact, build_message, mask_id_numbers
from routing.handoff.relay import OutboxRelay
from routing.handoff.wiring import build_relay, running_handoff
from routing.identity import mask_id, mask_phone
from store.crypto import PiiCipher
from store.db import Database
from store.incidents import (
    RECEIVED,
    TRANSFERRED_12345,
    IncidentBook,
    IncidentRecord,
)
from store.outbox import CAD110, DEAD, MEDIATION, PENDING, SENT, WORKORDER_12345, Outbox, OutboxItem
from tests.fakes import fake_identity
from tests.support import START, Clock

CIPHER = PiiCipher(b"h" * 32)
PERSON = fake_identity(seed=7)
TOKEN = "local-test-token"


def answers(**facts: dict[str, Any]) -> dict[str, Any]:
    base = {"description": {"answer": "given", "text": "电动车被偷了"}}
    return {"answers": {**base, **facts}, "reasons": ["去向：110警情·盗窃"], "confidence": 0.9}


async def report(book: IncidentBook, sender: str = "alice", **overrides: Any) -> IncidentRecord:
    fields: dict[str, Any] = {
        "route": "police",
        "category": "theft",
        "urgency": "normal",
        "call_110_now": False,
        "aggression": False,
        "emergency": False,
        "verified": True,
        "details": answers(),
        "missing": ["time"],
        "completeness": 0.7,
        "status": RECEIVED,
    }
    fields.update(overrides)
    return await book.open_draft("web", sender, **fields)


@pytest.fixture
def book(db: Database, clock: Clock) -> IncidentBook:
    return IncidentBook(db, CIPHER, now=clock)


@pytest.fixture
def box(db: Database, clock: Clock) -> Outbox:
    return Outbox(db, CIPHER, now=clock)


@pytest.fixture
async def cad(tmp_path: Path) -> AsyncIterator[RunningReceiver]:
    async with running_local_receiver(LOCAL_CAD, tmp_path, token=TOKEN) as running:
        yield running


@pytest.fixture
async def workorders(tmp_path: Path) -> AsyncIterator[RunningReceiver]:
    async with running_local_receiver(LOCAL_WORKORDER, tmp_path, token=TOKEN) as running:
        yield running


@pytest.fixture
async def adapters(
    cad: RunningReceiver, workorders: RunningReceiver
) -> AsyncIterator[dict[str, Any]]:
    made = {
        CAD110: HttpCadAdapter(cad.url, TOKEN, timeout_s=0.5),
        WORKORDER_12345: HttpWorkOrderAdapter(workorders.url, TOKEN, timeout_s=0.5),
    }
    yield made
    for adapter in made.values():
        await adapter.close()


def make_relay(
    box: Outbox, book: IncidentBook, adapters: dict[str, Any], clock: Clock, **options: Any
) -> OutboxRelay:
    settings: dict[str, Any] = {
        "incidents": book,
        "clock": clock,
        "jitter": lambda cap: cap,  # the cap itself: delays are predictable
        "lease_s": 30.0,
        "deliver_timeout_s": 5.0,
        "console_base_url": "https://console.example",
        "worker_id": "relay-test",
    }
    settings.update(options)
    return OutboxRelay(box, adapters, **settings)


async def settled(condition: Any, rounds: int = 200) -> None:  # noqa: ANN401 - a callable
    """Let the event loop run until `condition()` holds (bounded by rounds, not by time)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


# --- messages: pure ---------------------------------------------------------------------


def record(**overrides: Any) -> IncidentRecord:
    fields: dict[str, Any] = {
        "id": 1,
        "number": "2026112300001",
        "channel": "web",
        "sender_id": "alice",
        "citizen_id": None,
        "route": "police",
        "category": "robbery",
        "urgency": "immediate",
        "call_110_now": True,
        "aggression": True,
        "emergency": True,
        "verified": True,
        "status": RECEIVED,
        "details": answers(
            description={
                "answer": "given",
                "text": f"有人抢了我的包，我身份证{PERSON.id_number}在里面",
            },
            location={"answer": "given", "text": "南京东路", "lat": 31.2354, "lng": 121.4807},
            weapons={"answer": "yes", "text": "拿着刀", "kinds": ["刀"]},
            injured={"answer": "no", "text": "没有", "count": 0},
            vehicle={"answer": "given", "text": "白色电动车 沪A12345", "plates": ["沪A12345"]},
            callback={"answer": "no", "text": "不方便接电话"},
            contact_consent={"answer": "yes", "text": "可以"},
        ),
        "completeness": 0.8,
        "missing": ("time",),
        "district": "黄浦区",
        "created_at": START,
        "updated_at": START,
        "submitted_at": START,
        "closed_at": None,
    }
    fields.update(overrides)
    return IncidentRecord(**fields)


def message_for(target: str, **overrides: Any):  # noqa: ANN201
    return build_message(
        record(**overrides),
        target=target,
        kind="create",
        idempotency_key=f"2026112300001:{target}:create:1",
        console_base_url="https://console.example/",
        contact=Contact(name=PERSON.name, phone=PERSON.phone),
    )


def test_the_cad_message_is_eido_like_and_masks_the_reporter() -> None:
    message = message_for(CAD110)
    body = eido_body(message)
    incident = body["incidentComponent"]
    assert incident["incidentTrackingIdentifier"] == "2026112300001"
    assert incident["incidentTypeText"] == "抢劫抢夺" and incident["dangerToLifeNow"] is True
    [location] = body["locationComponent"]
    assert location["civicAddressText"] == "南京东路" and location["district"] == "黄浦区"
    assert location["geo"] == {
        "latitude": 31.2354,
        "longitude": 121.4807,
        "coordinateReferenceSystem": "WGS84",
    }
    caller = body["personComponent"][0]
    assert caller["nameMasked"].startswith(PERSON.name[0]) and "*" in caller["nameMasked"]
    assert caller["phoneMasked"] == mask_phone(PERSON.phone)
    assert caller["callBackAllowed"] is False and caller["textOnly"] is True
    assert body["vehicleComponent"][0]["licensePlateText"] == ["沪A12345"]
    assert body["weaponsComponent"]["kinds"] == ["刀"]
    assert body["linkComponent"] == [
        {"linkRole": "Transcript", "uri": "https://console.example/console/incidents/2026112300001"}
    ]
    text = json.dumps(body, ensure_ascii=False)
    assert PERSON.phone not in text and PERSON.name not in text
    assert message.reporter.contact is None  # consent or not, the CAD gets no full contact


def test_no_message_carries_an_unmasked_id_number() -> None:
    for target in (CAD110, WORKORDER_12345):
        message = message_for(target)
        bodies = [eido_body(message), workorder_body(message)]
        text = json.dumps(bodies, ensure_ascii=False) + repr(message)
        assert PERSON.id_number not in text
        assert mask_id(PERSON.id_number) in text
    assert mask_id_numbers("卡号6222021234567890123") == "卡号6222021234567890123"
    assert PERSON.id_number not in mask_id_numbers(" ".join(PERSON.id_number))
    assert "H12345678" not in mask_id_numbers("回乡证H12345678")


def test_the_work_order_carries_contact_only_with_consent() -> None:
    def deadline(start: datetime, category: str) -> datetime:
        assert category == "property"
        return start + timedelta(days=3)

    civic = {"route": "12345", "category": "property", "urgency": "normal", "emergency": False}
    order = workorder_body(message_for(WORKORDER_12345, **civic), deadline)
    assert order["工单编号"] == "2026112300001" and order["操作"] == "新建"
    assert order["诉求类型"] == "物业管理" and order["来源"] == "微信110转办"
    assert order["联系人"] == PERSON.name and order["联系电话"] == PERSON.phone
    assert order["地址"] == "黄浦区 南京东路"
    assert order["转办时间"] == "2026-11-23T10:00:00+08:00"
    assert order["办理时限"] == "2026-11-26T10:00:00+08:00"

    no_consent = answers(contact_consent={"answer": "no", "text": "不同意"})
    order = workorder_body(message_for(WORKORDER_12345, details=no_consent, **civic))
    assert order["联系人"] is None and order["联系电话"] is None
    assert order["办理时限"] == "2026-11-28T10:00:00+08:00"  # property: 5 calendar days
    assert calendar_deadline(START, "no-such-category") == START + timedelta(days=7)


# --- adapters against a local stand-in -----------------------------------------------------


async def test_the_adapter_posts_with_the_idempotency_key(
    cad: RunningReceiver, adapters: dict[str, Any]
) -> None:
    message = message_for(CAD110)
    delivery = await adapters[CAD110].deliver(message)
    assert delivery == Delivery(external_ref=f"{LOCAL_CAD}-000001", status_code=201)
    assert cad.receiver.keys() == ["2026112300001:cad110:create:1"]
    again = await adapters[CAD110].deliver(message)
    assert again.duplicate and again.external_ref == delivery.external_ref
    assert cad.receiver.logical_count == 1


@pytest.mark.parametrize(
    ("fault", "retryable", "status"),
    [
        ({"fail": 1}, True, 500),
        ({"fail": 1, "status": 503}, True, 503),
        ({"fail": 1, "status": 429}, True, 429),
        ({"fail": 1, "status": 408}, True, 408),
        ({"fail": 1, "status": 422}, False, 422),
        ({"fail": 1, "status": 400}, False, 400),
        ({"garbage": 1}, True, 200),
    ],
)
async def test_how_answers_are_read(
    cad: RunningReceiver,
    adapters: dict[str, Any],
    fault: dict[str, Any],
    retryable: bool,
    status: int,
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(cad.base_url + "/_local/control", json=fault) as answer,
    ):
        assert answer.status == 200
    with pytest.raises(HandoffError) as failure:
        await adapters[CAD110].deliver(message_for(CAD110))
    assert (failure.value.retryable, failure.value.status_code) == (retryable, status)
    assert "HTTP" in str(failure.value) and PERSON.name not in str(failure.value)


async def test_a_forced_409_counts_as_delivered(
    cad: RunningReceiver, adapters: dict[str, Any]
) -> None:
    cad.receiver.conflict_next(1)
    delivery = await adapters[CAD110].deliver(message_for(CAD110))
    assert delivery.duplicate and delivery.status_code == 409


async def test_timeouts_refusals_and_bad_tokens(
    cad: RunningReceiver, adapters: dict[str, Any]
) -> None:
    cad.receiver.slow(30)
    with pytest.raises(HandoffError, match="timed out") as failure:
        await adapters[CAD110].deliver(message_for(CAD110))
    assert failure.value.retryable
    cad.receiver.release()

    unreachable = HttpCadAdapter("http://127.0.0.1:9/intake", TOKEN, timeout_s=0.5)
    with pytest.raises(HandoffError, match="unreachable") as failure:
        await unreachable.deliver(message_for(CAD110))
    assert failure.value.retryable
    await unreachable.close()

    wrong = HttpCadAdapter(cad.url, "wrong-token", timeout_s=0.5)
    with pytest.raises(HandoffError) as failure:
        await wrong.deliver(message_for(CAD110))
    assert (failure.value.status_code, failure.value.retryable) == (401, False)
    await wrong.close()


async def test_the_stand_in_records_a_masked_file(
    workorders: RunningReceiver, adapters: dict[str, Any]
) -> None:
    civic = {"route": "12345", "category": "property", "emergency": False}
    await adapters[WORKORDER_12345].deliver(message_for(WORKORDER_12345, **civic))
    [kept] = workorders.receiver.messages.values()
    assert kept["联系电话"] == PERSON.phone  # what the real 12345 would get, with consent
    text = workorders.receiver.path.read_text(encoding="utf-8")
    assert PERSON.phone not in text and mask_phone(PERSON.phone) in text
    assert PERSON.name not in text and "工单编号" in text


# --- the relay ---------------------------------------------------------------------------


async def test_a_report_reaches_the_cad_exactly_once(
    db: Database,
    book: IncidentBook,
    box: Outbox,
    clock: Clock,
    cad: RunningReceiver,
    adapters: dict[str, Any],
) -> None:
    incident = await report(book)
    relay = make_relay(box, book, adapters, clock)
    assert await relay.run_once() == 1
    assert await relay.run_once() == 0
    assert cad.receiver.keys() == [f"{incident.number}:cad110:create:1"]
    [row] = await box.list()
    assert (row.status, row.external_ref, row.attempts) == (SENT, f"{LOCAL_CAD}-000001", 1)
    after = await book.get(incident.number)
    assert after.status == RECEIVED  # accepted by the CAD is not dispatched
    assert (await book.timeline(incident.number))[-1].note == "已推送110接处警系统"
    [attempt] = await box.attempts(row.id)
    assert (attempt.ok, attempt.status_code, attempt.worker) == (True, 201, "relay-test")


async def test_a_work_order_moves_the_incident_to_transferred(
    book: IncidentBook,
    box: Outbox,
    clock: Clock,
    workorders: RunningReceiver,
    adapters: dict[str, Any],
) -> None:
    incident = await report(
        book,
        route="12345",
        category="property",
        details=answers(contact_consent={"answer": "yes", "text": "可以"}),
    )

    async def contacts(found: IncidentRecord) -> Contact:
        assert found.number == incident.number
        return Contact(name=PERSON.name, phone=PERSON.phone)

    relay = make_relay(box, book, adapters, clock, contacts=contacts)
    await relay.run_once()
    [order] = workorders.receiver.messages.values()
    assert order["工单编号"] == incident.number and order["联系电话"] == PERSON.phone
    assert (await book.get(incident.number)).status == TRANSFERRED_12345


@pytest.mark.parametrize("fault", ["fail", "garbage", "slow"])
async def test_retries_back_off_and_deliver_one_logical_message(
    book: IncidentBook,
    box: Outbox,
    clock: Clock,
    cad: RunningReceiver,
    adapters: dict[str, Any],
    fault: str,
) -> None:
    incident = await report(book)
    relay = make_relay(box, book, adapters, clock, base_delay_s=2.0)
    if fault == "fail":
        cad.receiver.fail_next(2)
    elif fault == "garbage":
        cad.receiver.garbage_next(2)
    else:
        cad.receiver.slow(30)  # longer than the adapter's 0.5 s timeout

    await relay.run_once()
    [row] = await box.list()
    assert (row.status, row.attempts) == (PENDING, 1)
    assert row.next_attempt_at == START + timedelta(seconds=2)
    if fault == "slow":  # the stand-in got it after all, as a slow real system would
        cad.receiver.release()
        await settled(lambda: cad.receiver.logical_count == 1)
        cad.receiver.reset()
    assert await relay.run_once() == 0  # not due yet

    clock.advance(seconds=2)
    await relay.run_once()
    [row] = await box.list()
    if fault == "fail":  # a second 500: the delay doubles
        assert (row.status, row.attempts) == (PENDING, 2)
        assert row.next_attempt_at == START + timedelta(seconds=2 + 4)
        assert row.last_error == "110 CAD answered HTTP 500"
        clock.advance(seconds=4)
        await relay.run_once()
        [row] = await box.list()
    assert row.status == SENT
    assert cad.receiver.logical_count == 1
    assert set(cad.receiver.keys()) == {f"{incident.number}:cad110:create:1"}
    outcomes = [a.ok for a in await box.attempts(row.id)]
    assert outcomes[-1] is True and outcomes.count(True) == 1


async def test_backoff_is_capped_full_jitter(box: Outbox, book: IncidentBook) -> None:
    caps: list[float] = []

    def jitter(cap: float) -> float:
        caps.append(cap)
        return cap / 2

    relay = OutboxRelay(box, {}, base_delay_s=2, max_delay_s=60, jitter=jitter)
    assert [relay.backoff_s(n) for n in (1, 2, 3, 6, 7, 20)] == [1, 2, 4, 30, 30, 30]
    assert caps == [2, 4, 8, 60, 60, 60]
    assert relay.backoff_s(1, retry_after_s=45) == 45  # the receiver asked for more
    assert relay.backoff_s(1, retry_after_s=9999) == 60


async def test_dead_letter_after_the_limit_and_retry_brings_it_back(
    book: IncidentBook,
    box: Outbox,
    clock: Clock,
    cad: RunningReceiver,
    adapters: dict[str, Any],
) -> None:
    await report(book)
    dead: list[tuple[OutboxItem, str]] = []
    attempts: list[bool] = []
    relay = make_relay(
        box,
        book,
        adapters,
        clock,
        max_attempts=3,
        on_dead=lambda item, error: dead.append((item, error)),
        on_attempt=lambda item, attempt: attempts.append(attempt.ok),
    )
    cad.receiver.fail_next(100)
    for _ in range(3):
        await relay.run_once()
        clock.advance(hours=1)
    [row] = await box.list()
    assert (row.status, row.attempts) == (DEAD, 3)
    assert row.last_error == "110 CAD answered HTTP 500 (gave up after 3 tries)"
    assert [item.id for item, _ in dead] == [row.id] and attempts == [False] * 3
    assert await relay.run_once() == 0  # dead rows wait for an operator

    cad.receiver.reset()
    assert await box.retry(row.id)
    await relay.run_once()
    [row] = await box.list()
    assert row.status == SENT and cad.receiver.logical_count == 1
    assert len(await box.attempts(row.id)) == 4


async def test_a_client_error_is_dead_at_once(
    book: IncidentBook,
    box: Outbox,
    clock: Clock,
    cad: RunningReceiver,
    adapters: dict[str, Any],
) -> None:
    await report(book)
    cad.receiver.fail_next(1, status=422)
    await make_relay(box, book, adapters, clock).run_once()
    [row] = await box.list()
    assert (row.status, row.attempts, row.last_error) == (DEAD, 1, "110 CAD answered HTTP 422")


async def test_a_409_counts_as_delivered(
    book: IncidentBook,
    box: Outbox,
    clock: Clock,
    workorders: RunningReceiver,
    adapters: dict[str, Any],
) -> None:
    incident = await report(book, route="12345", category="courier")
    workorders.receiver.conflict_next(1)
    await make_relay(box, book, adapters, clock).run_once()
    [row] = await box.list()
    assert row.status == SENT and row.external_ref == f"{LOCAL_WORKORDER}-000001"
    assert (await book.get(incident.number)).status == TRANSFERRED_12345


async def test_a_worker_killed_after_sending_is_covered_by_the_lease(
    book: IncidentBook,
    box: Outbox,
    clock: Clock,
    cad: RunningReceiver,
    adapters: dict[str, Any],
) -> None:
    """Sent, then the worker died before recording it: another worker sends it again once
    the lease ends, under the same key, and the receiver keeps one logical message."""
    incident = await report(book)

    class KilledBeforeRecording(IncidentBook):
        async def handoff_delivered(self, *args: Any, **kwargs: Any) -> bool:
            raise ConnectionResetError("worker killed")

    doomed = make_relay(
        box, KilledBeforeRecording(book._db, CIPHER, now=clock), adapters, clock, lease_s=30
    )
    await doomed.run_once()
    assert cad.receiver.logical_count == 1
    [row] = await box.list()
    assert row.status == "sending"

    survivor = make_relay(box, book, adapters, clock, worker_id="survivor")
    assert await survivor.run_once() == 0  # the lease still holds
    clock.advance(seconds=31)
    assert await survivor.run_once() == 1
    [row] = await box.list()
    assert (row.status, row.attempts) == (SENT, 2)
    key = f"{incident.number}:cad110:create:1"
    assert cad.receiver.keys() == [key, key]
    assert [r.status for r in cad.receiver.requests] == [201, 409]
    assert cad.receiver.logical_count == 1
    assert [e.note for e in await book.timeline(incident.number)].count("已推送110接处警系统") == 1


async def test_a_row_that_keeps_killing_its_worker_ends_up_dead(
    book: IncidentBook, box: Outbox, clock: Clock, adapters: dict[str, Any]
) -> None:
    await report(book)
    for _ in range(3):  # claimed, then the worker vanished: no outcome recorded
        assert len(await box.claim_due("crashing", lease_s=30)) == 1
        clock.advance(seconds=31)
    await make_relay(box, book, adapters, clock, max_attempts=2).run_once()
    [row] = await box.list()
    assert row.status == DEAD and "worker lost" in row.last_error


async def test_two_relays_on_two_engines_send_each_row_once(
    database_url: str,
    book: IncidentBook,
    clock: Clock,
    cad: RunningReceiver,
    adapters: dict[str, Any],
) -> None:
    numbers = [(await report(book, f"s{i}")).number for i in range(30)]
    engines = [Database(database_url), Database(database_url)]
    try:
        relays = [
            make_relay(
                Outbox(engine, CIPHER, now=clock),
                IncidentBook(engine, CIPHER, now=clock),
                adapters,
                clock,
                worker_id=f"relay-{i}",
                batch_size=3,
                concurrency=2,
            )
            for i, engine in enumerate(engines)
        ]

        async def drain(relay: OutboxRelay) -> int:
            total = 0
            while sent := await relay.run_once():
                total += sent
            return total

        counts = await asyncio.gather(*(drain(relay) for relay in relays))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(counts) == 30
    assert sorted(cad.receiver.keys()) == sorted(f"{n}:cad110:create:1" for n in numbers)
    assert all(r.status == 201 for r in cad.receiver.requests)  # no second send, no 409


async def test_updates_and_cancels_follow_their_create_in_order(
    book: IncidentBook,
    box: Outbox,
    clock: Clock,
    cad: RunningReceiver,
    adapters: dict[str, Any],
) -> None:
    incident = await report(book, emergency=True, call_110_now=True)
    location = {"answer": "given", "text": "人民广场", "lat": 31.23, "lng": 121.47}
    await book.update(incident.number, details=answers(location=location))
    await book.cancel(incident.number, "web", "alice", "误报")
    relay = make_relay(box, book, adapters, clock)
    while await relay.run_once():
        pass
    kinds = [body["eidoMessageKind"] for body in cad.receiver.messages.values()]
    assert kinds == ["create", "update", "cancel"]
    update = list(cad.receiver.messages.values())[1]
    assert update["locationComponent"][0]["geo"]["latitude"] == 31.23
    assert "误报" not in json.dumps(list(cad.receiver.messages.values()), ensure_ascii=False)
    notes = [e.note for e in await book.timeline(incident.number)]
    assert notes[-1] == "已通知110接处警系统：报警人撤销"


async def test_a_payload_that_does_not_open_is_dead_not_a_crash(
    db: Database,
    book: IncidentBook,
    clock: Clock,
    adapters: dict[str, Any],
    cad: RunningReceiver,
) -> None:
    await report(book)
    other_key = Outbox(db, PiiCipher(b"z" * 32), now=clock)
    await make_relay(other_key, book, adapters, clock).run_once()
    [row] = await other_key.list()
    assert row.status == DEAD and "unreadable" in row.last_error
    assert cad.receiver.requests == []


async def test_a_failing_contact_lookup_is_retried_not_dead(
    book: IncidentBook,
    box: Outbox,
    clock: Clock,
    workorders: RunningReceiver,
    adapters: dict[str, Any],
) -> None:
    await report(book, route="12345", category="property")

    async def citizen_store_down(_record: IncidentRecord) -> Contact:
        raise ConnectionRefusedError("citizen store down")

    await make_relay(box, book, adapters, clock, contacts=citizen_store_down).run_once()
    [row] = await box.list()
    assert (row.status, row.last_error) == (
        PENDING,
        "contact lookup failed: ConnectionRefusedError",
    )
    assert workorders.receiver.requests == []


async def test_run_forever_delivers_and_stops(
    book: IncidentBook,
    box: Outbox,
    clock: Clock,
    cad: RunningReceiver,
    adapters: dict[str, Any],
) -> None:
    relay = make_relay(box, book, adapters, clock, interval_s=30)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run_forever(stop))
    await report(book)
    relay.wake()  # no waiting for the 30 s interval
    await settled(lambda: cad.receiver.logical_count == 1)
    stop.set()
    await asyncio.wait_for(task, 5)


# --- wiring ------------------------------------------------------------------------------


async def test_running_handoff_uses_local_stand_ins_in_development(
    db: Database, book: IncidentBook, tmp_path: Path
) -> None:
    async with running_handoff(
        db, CIPHER, {"ALARMBOT_ENV": "dev", "OUTBOX_POLL_S": "0.05"}, tmp_path
    ) as handoff:
        assert set(handoff.relay.adapters) == {CAD110, WORKORDER_12345, MEDIATION}
        await report(book, route="12345", category="courier")
        receiver = handoff.local_receivers[WORKORDER_12345]
        await settled(lambda: receiver.logical_count == 1)
    assert (tmp_path / "local-receivers" / f"{LOCAL_WORKORDER}.jsonl").exists()
    [row] = await Outbox(db, CIPHER).list()
    assert row.status == SENT


def test_build_relay_reads_the_environment(db: Database) -> None:
    env = {
        "CAD_URL": "https://cad.example/eido",
        "CAD_TOKEN": "t",
        "HANDOFF_TIMEOUT_S": "4",
        "OUTBOX_MAX_ATTEMPTS": "5",
        "ALARMBOT_PUBLIC_URL": "https://alarm.example",
    }
    relay = build_relay(db, CIPHER, env, local_urls={WORKORDER_12345: "http://127.0.0.1:1/x"})
    assert relay.adapters[CAD110].url == "https://cad.example/eido"
    assert relay.adapters[WORKORDER_12345].url == "http://127.0.0.1:1/x"
    assert relay.max_attempts == 5 and relay.console_base_url == "https://alarm.example"
    assert relay.adapters[CAD110].timeout_s == 4 and relay.lease_s > relay.deliver_timeout_s
    assert set(build_relay(db, CIPHER, {"ALARMBOT_ENV": "prod"}).adapters) == set()
    with pytest.raises(ValueError, match="HANDOFF_TIMEOUT_S"):
        build_relay(db, CIPHER, {"HANDOFF_TIMEOUT_S": "soon"})
