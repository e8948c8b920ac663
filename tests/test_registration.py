"""The registration service over a real database (SQLite and PostgreSQL): sealed drafts,
SMS codes with limits across accounts, one ID per account, phone change and erasure."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from routing.adapters.identity import LocalFormatOnlyVerifier
from routing.adapters.sms import LocalSmsOutbox
from routing.otp import OneTimeCodes
from routing.registration import RegistrationService, build_registration
from store.crypto import PiiCipher
from store.incidents import IncidentBook
from store.models import Citizen, Incident, RegistrationDraft
from store.registrations import RegistrationStore
from tests.fakes import fake_identity

CIPHER = PiiCipher(b"r" * 32)
START = datetime(2026, 11, 23, 4, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FailingSms:
    async def send(self, phone: str, template_id: str, params: dict, *, key: str) -> None:  # noqa: ARG002
        raise RuntimeError("gateway down")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sms() -> LocalSmsOutbox:
    return LocalSmsOutbox(path=None)


@pytest.fixture
def service(db, clock: Clock, sms: LocalSmsOutbox) -> RegistrationService:  # noqa: ANN001
    store = RegistrationStore(db, CIPHER, now=clock)
    codes = OneTimeCodes(CIPHER.otp_key, clock=clock.epoch)
    return RegistrationService(store, codes, sms, LocalFormatOnlyVerifier(), clock=clock)


async def fill(service: RegistrationService, sender: str, seed: int, sms) -> str:  # noqa: ANN001
    person = fake_identity(seed)
    assert (await service.give_name("web", sender, person.name)).ok
    assert (await service.give_id("web", sender, person.id_number)).ok
    assert (await service.give_phone("web", sender, person.phone)).ok
    assert (await service.send_code("web", sender)).ok
    code = sms.last_to(person.phone).params["code"]
    assert (await service.check_code("web", sender, code)).ok
    return person.id_number


async def test_drafts_are_sealed_and_shown_masked(db, service: RegistrationService) -> None:  # noqa: ANN001
    person = fake_identity(11)
    step = await service.give_name("web", "s1", f"  {person.name} ")
    assert step.ok and step.shown.startswith(person.name[0]) and "*" in step.shown
    id_step = await service.give_id("web", "s1", person.id_number.lower())
    assert id_step.ok and person.id_number not in id_step.shown
    async with db.reader() as session:
        row = (await session.execute(select(RegistrationDraft))).scalar_one()
    raw = b"".join(v for v in (row.name_sealed, row.id_number_sealed) if v)
    assert person.name.encode() not in raw and person.id_number.encode() not in raw
    assert (await service.summary("web", "s1"))["name"] == step.shown


async def test_invalid_answers_store_nothing(db, service: RegistrationService) -> None:  # noqa: ANN001
    assert not (await service.give_name("web", "s2", "12345")).ok
    valid = fake_identity(12).id_number
    broken = valid[:-1] + ("1" if valid[-1] != "1" else "2")
    bad = await service.give_id("web", "s2", broken)
    assert not bad.ok and bad.hint
    async with db.reader() as session:
        assert (await session.execute(select(RegistrationDraft))).first() is None


async def test_register_and_one_id_per_account(db, service, sms) -> None:  # noqa: ANN001
    id_number = await fill(service, "s3", 21, sms)
    assert (await service.complete("web", "s3")).ok
    async with db.reader() as session:
        citizen = (await session.execute(select(Citizen))).scalar_one()
        drafts = (await session.execute(select(RegistrationDraft))).all()
    assert citizen.status == "registered" and not drafts
    assert id_number.encode() not in citizen.id_number_sealed
    taken = await service.give_id("web", "s4", id_number)
    assert not taken.ok and taken.code == "taken"
    profile = await service.profile("web", "s3")
    assert set(profile) == {"name", "id", "phone"} and "****" in profile["phone"]


async def test_code_limits_hold_across_accounts(service, sms, clock: Clock) -> None:  # noqa: ANN001
    phone = fake_identity(31).phone
    await service.give_phone("web", "a", phone)
    assert (await service.send_code("web", "a")).ok
    again = await service.send_code("web", "a")
    assert not again.ok and again.code == "too_soon"
    await service.give_phone("web", "b", phone)
    other_account = await service.send_code("web", "b")
    assert other_account.code == "too_soon", "the 60 s gap is per phone, whichever account"
    for _ in range(4):
        clock.advance(61)
        assert (await service.send_code("web", "a")).ok
    clock.advance(61)
    limited = await service.send_code("web", "b")
    assert limited.code == "rate_limited" and "分钟" in limited.hint
    assert len(sms.messages) == 5


async def test_wrong_codes_then_locked(service, sms) -> None:  # noqa: ANN001
    phone = fake_identity(41).phone
    await service.give_phone("web", "c", phone)
    await service.send_code("web", "c")
    code = sms.last_to(phone).params["code"]
    wrong = "000000" if code != "000000" else "999999"
    hints = [(await service.check_code("web", "c", wrong)).hint for _ in range(5)]
    assert "4次" in hints[0] and "重新发送" in hints[-1]
    assert not (await service.check_code("web", "c", code)).ok


async def test_sms_failure_is_reported_not_raised(db, clock: Clock) -> None:  # noqa: ANN001
    store = RegistrationStore(db, CIPHER, now=clock)
    service = RegistrationService(
        store,
        OneTimeCodes(CIPHER.otp_key, clock=clock.epoch),
        FailingSms(),
        LocalFormatOnlyVerifier(),
        clock=clock,
    )
    await service.give_phone("web", "d", fake_identity(51).phone)
    step = await service.send_code("web", "d")
    assert not step.ok and step.code == "sms_failed"


async def test_prod_without_sms_gateway_builds_and_says_codes_cannot_be_sent(
    db, tmp_path: Path
) -> None:  # noqa: ANN001
    service = build_registration(
        RegistrationStore(db, CIPHER), CIPHER.otp_key, {"ALARMBOT_ENV": "prod"}, tmp_path
    )
    await service.give_phone("web", "p", fake_identity(52).phone)
    step = await service.send_code("web", "p")
    assert not step.ok and step.code == "sms_unavailable" and "报警不受影响" in step.hint
    assert not (tmp_path / "local-sms.jsonl").exists()  # nothing pretended to send


async def test_change_phone_and_erase(db, service, sms) -> None:  # noqa: ANN001
    await fill(service, "e", 61, sms)
    await service.complete("web", "e")
    new_phone = fake_identity(62).phone
    await service.give_phone("web", "e", new_phone)
    assert (await service.apply_new_phone("web", "e")).ok
    store = RegistrationStore(db, CIPHER)
    assert (await store.identity("web", "e")).phone == new_phone

    async with db.reader() as session:
        citizen_id = (await session.execute(select(Citizen.id))).scalar_one()
    book = IncidentBook(db, CIPHER)
    record = await book.open_draft(
        "web",
        "e",
        route="police",
        category="theft",
        urgency="normal",
        call_110_now=False,
        aggression=False,
        emergency=False,
        verified=True,
        details={},
        missing=[],
        completeness=0.5,
        citizen_id=citizen_id,
    )
    assert await service.erase("web", "e")
    async with db.reader() as session:
        citizen = (await session.execute(select(Citizen))).scalar_one()
        incident = (await session.execute(select(Incident))).scalar_one()
    assert citizen.status == "erased" and citizen.name_sealed is None
    assert citizen.id_number_hash is None and citizen.phone_sealed is None
    assert incident.number == record.number and incident.citizen_id is None
    assert await store.identity("web", "e") is None
