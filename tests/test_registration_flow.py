"""Real-name registration end to end over /api/chat with the real model and the LOCAL SMS
outbox: the happy path, bad answers, an emergency mid-form, one ID per account, self-service,
and that no clear identity reaches the database file or the logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bot.app import RUNTIME
from store.registrations import RegistrationStore
from tests.fakes import FakeIdentity, fake_identity
from tests.support import ServerThread, make_settings
from tests.test_incident_flow import Citizen, incidents_of


def sms_records(server) -> Path:  # noqa: ANN001
    return Path(server.settings.var_dir) / "local-receivers" / "local-sms-gateway.jsonl"


def sms_code(server, phone: str) -> str:  # noqa: ANN001
    """The newest code the LOCAL SMS gateway stand-in received for this (masked) phone,
    read as a developer would: from its record file."""
    masked = phone[:3] + "****" + phone[7:]
    lines = [json.loads(line) for line in sms_records(server).read_text("utf-8").splitlines()]
    body = next(line["body"] for line in reversed(lines) if line["body"]["phone"] == masked)
    assert body["template_id"] == "otp"
    return body["params"]["code"]


async def register(server, citizen: Citizen, person: FakeIdentity) -> str:  # noqa: ANN001
    reply = await citizen.press("/register")
    assert "第二十五条" in reply and citizen.buttons() == ["同意并登记", "暂不登记"]
    assert "姓名" in await citizen.answer("yes")
    assert "身份证" in await citizen.say(person.name)
    assert "手机号" in await citizen.say(person.id_number)
    reply = await citizen.say(person.phone)
    assert f"验证码已发到{person.phone[:3]}****{person.phone[7:]}" in reply
    reply = await citizen.say(sms_code(server, person.phone))
    return reply


@pytest.fixture
def citizen(live_server_url: str) -> Citizen:
    return Citizen(live_server_url)


async def test_register_then_greeted_as_registered(live_server, citizen: Citizen, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    person = fake_identity(501)
    assert "实名登记" in (await citizen.say("你好")) + " ".join(citizen.buttons())
    card = await register(live_server, citizen, person)
    assert "请核对" in card
    assert f"{person.name[0]}*" in card
    assert f"{person.id_number[:3]}***********{person.id_number[-4:]}" in card
    assert person.id_number not in card and person.phone not in card
    reply = await citizen.answer("submit")
    assert "实名登记完成" in reply
    assert "实名登记" not in await citizen.say("你好")

    info = await citizen.say("查看我的信息")
    assert f"{person.phone[:3]}****{person.phone[7:]}" in info and person.phone not in info

    # Nothing in clear: not in the database file (nor its WAL), not in any log line.
    runtime = live_server.app[RUNTIME]
    db_file = Path(runtime.db.engine.url.database)
    raw = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    for secret in (person.id_number, person.phone, person.name):
        assert secret.encode() not in raw, "identity stored in clear"
        assert secret not in caplog.text, "identity in a log line"


async def test_bad_answers_get_specific_hints(citizen: Citizen) -> None:
    person = fake_identity(502)
    await citizen.press("/register")
    await citizen.answer("yes")
    assert "姓名" in await citizen.say("张3")  # digits are no name
    await citizen.say(person.name)
    wrong_check = person.id_number[:-1] + ("1" if person.id_number[-1] != "1" else "2")
    assert "校验位" in await citizen.say(wrong_check)
    assert "校验位" in await citizen.say(wrong_check)
    third = await citizen.say(wrong_check)
    assert "110" in third and "取消登记" in citizen.buttons()
    full_width = person.id_number.translate(str.maketrans("0123456789X", "０１２３４５６７８９ｘ"))
    assert "手机号" in await citizen.say(full_width)
    assert "手机" in await citizen.say("12345")


async def test_wrong_code_counts_down_and_resend_waits(live_server, citizen: Citizen) -> None:  # noqa: ANN001
    person = fake_identity(503)
    await citizen.press("/register")
    await citizen.answer("yes")
    await citizen.say(person.name)
    await citizen.say(person.id_number)
    await citizen.say(person.phone)
    code = sms_code(live_server, person.phone)
    wrong = "000000" if code != "000000" else "111111"
    assert "还可以再试4次" in await citizen.say(wrong)
    assert "6位" in await citizen.say("好的")
    assert "频繁" in await citizen.answer("resend"), "a second code within 60 s must wait"
    assert "请核对" in await citizen.say(code)


async def test_an_emergency_leaves_registration_at_once(live_server, citizen: Citizen) -> None:  # noqa: ANN001
    person = fake_identity(504)
    await citizen.press("/register")
    await citizen.answer("yes")
    reply = await citizen.say("救命，有人拿刀在砍我")
    assert "情况危急" in reply and "在哪里" in citizen.last[-1]["text"]
    [incident] = incidents_of(live_server, citizen.sender)
    assert incident.emergency and not incident.verified
    await citizen.say("静安区南京西路1266号")
    await citizen.answer("cancel")
    reply = await citizen.press("/register")
    assert "姓名" in reply, "registration resumes where it stopped (consent kept)"
    await citizen.say(person.name)


async def test_one_id_one_account(live_server, live_server_url: str) -> None:  # noqa: ANN001
    person = fake_identity(505)
    first = Citizen(live_server_url)
    await register(live_server, first, person)
    await first.answer("submit")
    second = Citizen(live_server_url)
    await second.press("/register")
    await second.answer("yes")
    await second.say("李四")
    assert "另一个账号" in await second.say(person.id_number)


async def test_change_phone_and_erase(live_server, citizen: Citizen) -> None:  # noqa: ANN001
    person, other = fake_identity(506), fake_identity(507)
    await register(live_server, citizen, person)
    await citizen.answer("submit")
    await citizen.say("我的电动车在楼下被人偷了")
    await citizen.say("普陀区真北路100号")
    await citizen.answer("cancel")

    assert "手机号" in await citizen.press("/change_phone")
    await citizen.say(other.phone)
    reply = await citizen.say(sms_code(live_server, other.phone))
    assert f"手机号已改为{other.phone[:3]}****{other.phone[7:]}" in reply
    runtime = live_server.app[RUNTIME]
    store = RegistrationStore(runtime.db, runtime.cipher)
    identity = live_server.call(store.identity("web", citizen.sender))
    assert identity.phone == other.phone

    assert "无法恢复" in await citizen.press("/delete_my_data")
    assert "已注销" in await citizen.press('/delete_my_data{"answer": "confirm"}')
    assert live_server.call(store.identity("web", citizen.sender)) is None
    [incident] = incidents_of(live_server, citizen.sender)
    assert incident.citizen_id is None, "the report stays, without the person"
    assert "还没有实名登记" in await citizen.say("查看我的信息")


async def test_declining_keeps_reporting_open(citizen: Citizen) -> None:
    await citizen.press("/register")
    reply = await citizen.answer("no")
    assert "不用登记" in reply
    assert "地点" in await citizen.say("我的手机在地铁上被偷了")


async def test_registration_resumes_after_a_restart(model_path, tmp_path) -> None:  # noqa: ANN001
    from tests.support import ServerThread, make_settings

    person = fake_identity(508)
    settings = make_settings(tmp_path, model_path.parent)
    first = ServerThread(settings).start()
    try:
        citizen = Citizen(first.url, "restart-registration")
        await citizen.press("/register")
        await citizen.answer("yes")
        await citizen.say(person.name)
    finally:
        first.stop()
    second = ServerThread(settings).start()
    try:
        citizen.url = second.url
        assert "手机号" in await citizen.say(person.id_number), "goes on with the next step"
        await citizen.say(person.phone)
        card = await citizen.say(sms_code(second, person.phone))
        assert "请核对" in card and f"{person.name[0]}*" in card
    finally:
        second.stop()


async def test_a_registered_reporters_contact_goes_to_12345_with_consent(
    live_server, citizen: Citizen
) -> None:  # noqa: ANN001
    from bot.app import HANDOFF
    from store.outbox import CAD110, WORKORDER_12345
    from tests.test_incident_flow import _eventually

    person = fake_identity(509)
    await register(live_server, citizen, person)
    await citizen.answer("submit")
    await citizen.say("小区物业一直不修电梯")
    await citizen.say("杨浦区国定路200号")
    await citizen.answer("yes")  # agrees to be contacted
    await citizen.answer("submit")
    [incident] = incidents_of(live_server, citizen.sender)
    assert incident.verified and incident.citizen_id is not None
    receivers = live_server.app[HANDOFF].local_receivers

    def work_order() -> dict | None:
        found = receivers[WORKORDER_12345].messages
        return next((v for k, v in found.items() if k.startswith(incident.number)), None)

    body = json.dumps(await _eventually(work_order), ensure_ascii=False)
    assert person.phone in body, "12345 may call back: the citizen agreed"

    await citizen.say("救命 有人拿刀在砍人")

    def cad_message() -> dict | None:
        [emergency, *_] = incidents_of(live_server, citizen.sender)
        found = receivers[CAD110].messages
        return next((v for k, v in found.items() if k.startswith(emergency.number)), None)

    cad = json.dumps(await _eventually(cad_message), ensure_ascii=False)
    assert person.phone not in cad and person.id_number not in cad
    assert person.phone[-4:] in cad, "the CAD sees the reporter's masked phone"


@pytest.fixture(scope="module")
def prod_server_without_gateways(model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """Production with nothing external configured: no SMS gateway, CAD, 12345 or roster."""
    settings = make_settings(
        tmp_path_factory.mktemp("prod"), model_path.parent, env={"ALARMBOT_ENV": "prod"}
    )
    server = ServerThread(settings).start()
    yield server
    server.stop()


async def test_prod_without_sms_gateway_still_takes_reports(prod_server_without_gateways) -> None:  # noqa: ANN001
    """Registration says it cannot send codes and ends; an emergency is taken regardless."""
    server = prod_server_without_gateways
    citizen = Citizen(server.url)
    person = fake_identity(511)
    await citizen.press("/register")
    await citizen.answer("yes")
    await citizen.say(person.name)
    await citizen.say(person.id_number)
    reply = await citizen.say(person.phone)
    assert "验证码短信暂时发不出去" in reply and "报警不受影响" in reply
    assert not sms_records(server).exists()
    runtime = server.app[RUNTIME]
    draft = server.call(RegistrationStore(runtime.db, runtime.cipher).draft("web", citizen.sender))
    assert draft is None  # what was typed is not kept once registration cannot finish

    reply = await citizen.say("有人拿刀在砍人，就在我家楼下")
    assert "110" in reply
    [incident] = incidents_of(server, citizen.sender)
    assert incident.route == "police"
