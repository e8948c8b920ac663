"""The incident report end to end over /api/chat with the real model: each route, the
emergency fast path, corrections, cancellation, bad input, "我的报警" and a restart."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aiohttp
import pytest

from bot.app import RUNTIME
from store.incidents import IncidentBook
from store.models import Incident
from tests.support import ServerThread, make_settings


class Citizen:
    """One sender talking to a server, as the H5 page does."""

    def __init__(self, url: str, sender: str | None = None) -> None:
        self.url = url
        self.sender = sender or f"flow-{uuid.uuid4().hex[:10]}"
        self.last: list[dict] = []

    async def say(self, text: str, *, status: int = 200) -> str:
        return await self._post({"sender": self.sender, "text": text}, status)

    async def press(self, payload: str | dict, *, status: int = 200) -> str:
        if isinstance(payload, dict):
            payload = "/inform" + json.dumps(payload, ensure_ascii=False)
        return await self._post({"sender": self.sender, "payload": payload}, status)

    async def answer(self, value: str) -> str:
        return await self.press({"answer": value})

    async def _post(self, body: dict, status: int) -> str:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.url}/api/chat", json=body) as response,
        ):
            assert response.status == status, await response.text()
            reply = await response.json()
        if status != 200:
            return reply["message"]
        self.last = reply["messages"]
        return "\n".join(m.get("text", "") for m in self.last)

    def buttons(self) -> list[str]:
        return [b["title"] for m in self.last for b in m.get("buttons", [])]


def incidents_of(server: ServerThread, sender: str) -> list:
    runtime = server.app[RUNTIME]
    book = IncidentBook(runtime.db, runtime.cipher)
    return server.call(book.for_reporter("web", sender, include_drafts=True))


@pytest.fixture
def citizen(live_server_url: str) -> Citizen:
    return Citizen(live_server_url)


async def test_emergency_creates_the_incident_at_once_and_asks_where_first(
    live_server, citizen: Citizen
) -> None:  # noqa: ANN001
    first = await citizen.say("救命！有人拿刀在砍人")
    assert first.startswith("情况危急") and "110" in first
    assert "编号" in first, "the incident exists before any question is answered"
    assert "在哪里" in citizen.last[-1]["text"]
    [incident] = incidents_of(live_server, citizen.sender)
    assert (incident.route, incident.status, incident.emergency) == ("police", "received", True)
    assert incident.verified is False, "an unregistered reporter is flagged, never blocked"
    assert "location" in incident.missing

    reply = await citizen.say("静安区南京西路1266号门口")
    assert "安全" in reply  # the emergency order: where, then is the reporter safe
    [incident] = incidents_of(live_server, citizen.sender)
    assert incident.details["answers"]["location"]["district"] == "静安区"
    assert "location" not in incident.missing

    reply = await citizen.answer("no")
    assert "静音" in reply, "an unsafe reporter gets a safety tip"


async def test_civic_report_is_confirmed_and_submitted(live_server, citizen: Citizen) -> None:  # noqa: ANN001
    reply = await citizen.say("小区物业一直不修电梯，老人上下楼很困难")
    assert "12345" in reply and "地点" in reply
    reply = await citizen.say("浦东新区世纪大道100号")
    assert "同意" in reply and citizen.buttons() == ["同意", "不同意"]
    reply = await citizen.answer("yes")
    assert "请核对" in reply and "具体地点：浦东新区世纪大道100号" in reply
    assert citizen.buttons() == ["提交", "修改", "取消"]
    [draft] = incidents_of(live_server, citizen.sender)
    assert draft.status == "draft", "not handed on before the citizen confirms"

    reply = await citizen.answer("submit")
    assert f"编号{draft.number}" in reply
    [incident] = incidents_of(live_server, citizen.sender)
    assert (incident.route, incident.category) == ("12345", "property")
    assert incident.status in ("received", "transferred_12345"), "the relay may be done already"
    assert incident.completeness == 1.0 and incident.missing == ()

    reply = await citizen.say("我的报警")
    assert draft.number in reply and ("已受理" in reply or "已转12345" in reply)


async def test_mediation_turns_to_police_when_the_other_side_is_violent(
    live_server, citizen: Citizen
) -> None:  # noqa: ANN001
    reply = await citizen.say("楼上邻居天天半夜装修，我想找人调解一下")
    assert "调解" in reply
    await citizen.answer("邻居")
    reply = await citizen.answer("yes")  # 对方有没有动手或威胁您？ 有
    assert "110" in reply
    await citizen.say("闵行区莘庄镇莘松路380弄")
    reply = await citizen.answer("submit") if "请核对" in citizen.last[-1]["text"] else ""
    incidents = incidents_of(live_server, citizen.sender)
    assert incidents and incidents[0].route == "police"
    assert reply == "" or "编号" in reply


async def test_a_mediation_report_reaches_a_mediator_by_sms(live_server, citizen: Citizen) -> None:  # noqa: ANN001
    """Submitted, the case goes to the district's mediator (the LOCAL SMS gateway stand-in in
    tests) with a signed link, never the report or the reporter in the text."""
    await citizen.say("楼上邻居天天半夜拖椅子，说了好几次也不改，想找人调解一下")
    await citizen.answer("邻居")
    await citizen.answer("no")
    await citizen.say("徐汇区漕溪北路88号3号楼")
    reply = await citizen.answer("工作日晚上")
    assert "请核对" in reply and "具体地点：徐汇区漕溪北路88号3号楼" in reply
    reply = await citizen.answer("submit")
    assert "人民调解员" in reply and "110" in reply
    [incident] = incidents_of(live_server, citizen.sender)
    assert (incident.route, incident.category) == ("mediation", "neighbor")

    texts = Path(live_server.settings.var_dir) / "local-receivers" / "local-sms-gateway.jsonl"
    for _ in range(200):
        sent = texts.read_text("utf-8") if texts.exists() else ""
        if incident.number in sent:
            break
        await asyncio.sleep(0.05)
    [sms] = [json.loads(line) for line in sent.splitlines() if incident.number in line]
    assert sms["body"]["template_id"] in ("mediation_on_duty", "mediation_booking")
    assert sms["body"]["params"]["district"] == "徐汇区"
    assert "/m/" in sms["body"]["params"]["link"]
    assert "拖椅子" not in json.dumps(sms, ensure_ascii=False)


async def test_answers_to_the_wrong_question_are_asked_again(citizen: Citizen) -> None:
    await citizen.say("楼上邻居天天半夜拖椅子，说了好几次也不改，想找人调解一下")
    await citizen.answer("邻居")
    reply = await citizen.answer("no")
    assert "地点" in reply
    reply = await citizen.say("工作日晚上七点以后")
    assert "好像是时间" in reply
    reply = await citizen.say("徐汇区漕溪北路88号3号楼")
    assert "联系" in reply
    reply = await citizen.say("闵行区莘庄镇莘松路380弄")
    assert "好像是地址" in reply
    reply = await citizen.answer("工作日晚上")
    assert "具体地点：徐汇区漕溪北路88号3号楼" in reply and "方便联系的时间：工作日晚上" in reply


async def test_a_location_share_answers_where(citizen: Citizen) -> None:
    await citizen.say("我的电动车在楼下被人偷了")
    reply = await citizen.press({"lat": 31.2304, "lng": 121.4737, "label": "人民广场"})
    assert "什么时候" in reply  # the next question of a theft: location taken from the share


async def test_bad_answers_get_a_hint_and_lose_nothing(citizen: Citizen) -> None:
    await citizen.say("我的手机在地铁上被偷了")
    for odd in ("😭😭😭", "？？？！！"):
        reply = await citizen.say(odd)
        assert "文字" in reply
    too_long = await citizen.say("很" * 5000, status=413)
    assert "字" in too_long
    assert "请用文字告诉我" in await citizen.say("   ")
    reply = await citizen.say("地铁2号线人民广场站")
    assert "什么时候" in reply
    reply = await citizen.say("就在刚才")
    assert "对方" in reply or "几个人" in reply or "回电" in reply


async def test_skipped_after_repeated_unclear_answers(citizen: Citizen) -> None:
    await citizen.say("小区门口有人违章搭建了一个棚子")
    await citizen.say("徐汇区漕溪北路88号")
    for unclear in ("哈哈哈随便", "嘿嘿嘿啦啦"):
        assert "是" in await citizen.say(unclear)
    third = await citizen.say("啦啦啦")
    assert "跳过" in third and "请核对" in citizen.last[-1]["text"]


async def test_corrections_at_the_summary(live_server, citizen: Citizen) -> None:  # noqa: ANN001
    await citizen.say("我家楼下快递驿站把我的包裹弄丢了不赔")
    await citizen.say("长宁区天山路100号")
    reply = await citizen.answer("yes")
    assert "天山路100号" in reply
    reply = await citizen.say("地址不对，是长宁区天山路200号")
    assert "天山路200号" in reply and "请核对" in reply
    reply = await citizen.answer("edit")
    assert "哪一项" in reply and "具体地点" in citizen.buttons()
    reply = await citizen.press({"answer": "edit:location"})
    assert "地点" in reply
    reply = await citizen.say("长宁区天山路300号")
    assert "天山路300号" in reply and "请核对" in reply


async def test_cancel_mid_report(live_server, citizen: Citizen) -> None:  # noqa: ANN001
    await citizen.say("有人在我家门口打架，好像有人流血了")
    assert incidents_of(live_server, citizen.sender)[0].status == "received"
    reply = await citizen.say("取消")
    assert "已取消" in reply and "110" in reply
    [incident] = incidents_of(live_server, citizen.sender)
    assert incident.status == "cancelled"
    reply = await citizen.say("你好")
    assert "您好" in reply, "the next message starts afresh"


async def test_a_question_mid_report_is_answered_and_the_report_goes_on(citizen: Citizen) -> None:
    await citizen.say("我的电动车在楼下被人偷了")
    reply = await citizen.say("你是机器人吗")
    assert "自动应答" in reply and "地点" in reply


async def test_bare_request_asks_what_happened_first(citizen: Citizen) -> None:
    reply = await citizen.say("我要报警")
    assert "发生了什么" in reply
    reply = await citizen.say("我家门口的共享单车被人偷了")
    assert "地点" in reply


async def test_withdraw_a_submitted_report(live_server, citizen: Citizen) -> None:  # noqa: ANN001
    await citizen.say("物业乱收停车费")
    await citizen.say("普陀区真北路100号")
    await citizen.answer("no")
    await citizen.answer("submit")
    [incident] = incidents_of(live_server, citizen.sender)
    reply = await citizen.press(f'/cancel_incident{{"incident_number": "{incident.number}"}}')
    assert "原因" in reply and "误报" in citizen.buttons()
    reply = await citizen.press(
        f'/cancel_incident{{"incident_number": "{incident.number}", "answer": "误报"}}'
    )
    assert "已撤销" in reply
    reply = await citizen.press(f'/my_incidents{{"incident_number": "{incident.number}"}}')
    assert "已撤销" in reply and "提交" in reply


async def test_nobody_sees_or_cancels_someone_elses_report(
    live_server, live_server_url: str
) -> None:  # noqa: ANN001
    owner = Citizen(live_server_url)
    await owner.say("物业乱收停车费")
    await owner.say("普陀区真北路100号")
    await owner.answer("no")
    await owner.answer("submit")
    [incident] = incidents_of(live_server, owner.sender)
    stranger = Citizen(live_server_url)
    reply = await stranger.press(f'/my_incidents{{"incident_number": "{incident.number}"}}')
    assert "没有找到" in reply
    await stranger.press(
        f'/cancel_incident{{"incident_number": "{incident.number}", "answer": "误报"}}'
    )
    assert incidents_of(live_server, owner.sender)[0].status != "cancelled"


async def test_report_details_are_sealed_at_rest(live_server, citizen: Citizen) -> None:  # noqa: ANN001
    from sqlalchemy import select

    await citizen.say("我的电动车在楼下被人偷了")
    await citizen.say("黄浦区福州路185号")
    runtime = live_server.app[RUNTIME]

    async def raw() -> bytes:
        async with runtime.db.reader() as session:
            query = select(Incident.details_sealed).where(Incident.sender_id == citizen.sender)
            return (await session.execute(query)).scalar_one()

    assert "福州路".encode() not in live_server.call(raw())


async def test_a_report_resumes_after_a_restart(model_path, tmp_path) -> None:  # noqa: ANN001
    settings = make_settings(tmp_path, model_path.parent)
    first = ServerThread(settings).start()
    try:
        citizen = Citizen(first.url, "restart-report")
        await citizen.say("小区物业一直不修电梯")
        await citizen.say("杨浦区国定路100号")
    finally:
        first.stop()
    second = ServerThread(settings).start()
    try:
        citizen.url = second.url
        reply = await citizen.answer("yes")
        assert "请核对" in reply and "国定路100号" in reply
    finally:
        second.stop()


async def test_what_the_description_says_is_not_asked_again(citizen: Citizen) -> None:
    reply = await citizen.say("我的电动车昨晚在徐汇区漕溪北路88号楼下被人偷了")
    assert "地点" not in reply and "什么时候" not in reply
    assert "对方" in reply  # the theft questions go on with suspects


async def test_a_foreign_resident_is_answered_in_english(live_server, citizen: Citizen) -> None:  # noqa: ANN001
    reply = await citizen.say("Help! A man with a knife is attacking people in the street")
    assert reply.startswith("This sounds dangerous") and "110" in reply
    assert "report is recorded" in reply
    assert "Where" in citizen.last[-1]["text"] and citizen.buttons() == ["Not sure"]
    reply = await citizen.say("Exit 2 of People's Square metro station")
    assert "Are you safe" in reply and citizen.buttons() == ["Safe", "Not safe"]
    reply = await citizen.answer("no")
    assert "safe place" in reply
    [incident] = incidents_of(live_server, citizen.sender)
    assert incident.emergency and incident.route == "police"


async def test_english_prompts_and_card_through_a_theft_report(citizen: Citizen) -> None:
    reply = await citizen.say("Someone stole my bike outside my building last night")
    assert "police (110) matter" in reply
    reply = await citizen.say("200 Century Avenue, Pudong")
    assert "Where is it" not in reply
    for answer in ("now", "no", "no", "no"):
        reply = await citizen.answer(answer)
    assert "Please check your report" in reply and "location: 200 Century Avenue" in reply
    assert citizen.buttons() == ["Submit", "Change", "Cancel"]
    reply = await citizen.answer("submit")
    assert "Report number" in reply


async def test_several_open_reports_per_citizen(live_server, citizen: Citizen) -> None:  # noqa: ANN001
    for text, place in (
        ("物业乱收停车费", "普陀区真北路100号"),
        ("楼下饭店油烟太大，窗户都不敢开", "普陀区真北路120号"),
    ):
        await citizen.say(text)
        await citizen.say(place)
        await citizen.answer("yes")
        assert "编号" in await citizen.answer("submit")
    reply = await citizen.say("我的报警")
    numbers = [i.number for i in incidents_of(live_server, citizen.sender)]
    assert len(numbers) == 2 and all(n in reply for n in numbers)
    assert reply.count("已受理") + reply.count("已转12345") == 2


async def test_traditional_chinese_answers_are_kept_in_simplified(
    live_server, citizen: Citizen
) -> None:  # noqa: ANN001
    await citizen.say("我的電動車在樓下被人偷了")
    await citizen.say("黃浦區南京東路100號")
    [incident] = incidents_of(live_server, citizen.sender)
    assert incident.details["answers"]["location"]["text"] == "黄浦区南京东路100号"
    assert incident.category == "theft"


async def _eventually(check, timeout_s: float = 30.0):  # noqa: ANN001, ANN202
    """Poll until the background relay has done its part (no assertion on how long)."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.2)


async def test_an_emergency_reaches_the_local_cad_and_a_civic_report_the_12345_stand_in(
    live_server, live_server_url: str
) -> None:  # noqa: ANN001
    from bot.app import HANDOFF
    from store.outbox import CAD110, WORKORDER_12345

    receivers = live_server.app[HANDOFF].local_receivers
    danger = Citizen(live_server_url)
    await danger.say("救命，有人拿刀在楼道里砍人")
    [emergency] = incidents_of(live_server, danger.sender)
    cad = receivers[CAD110]

    def cad_has_it() -> bool:
        return any(key.startswith(emergency.number) for key in cad.messages)

    assert await _eventually(cad_has_it), "the emergency was pushed to the CAD stand-in"
    body = next(v for k, v in cad.messages.items() if k.startswith(emergency.number))
    assert emergency.number in json.dumps(body, ensure_ascii=False)

    civic = Citizen(live_server_url)
    await civic.say("小区物业一直不修电梯")
    await civic.say("杨浦区国定路100号")
    await civic.answer("yes")
    await civic.answer("submit")

    def transferred() -> bool:
        return incidents_of(live_server, civic.sender)[0].status == "transferred_12345"

    assert await _eventually(transferred)
    [incident] = incidents_of(live_server, civic.sender)
    assert any(k.startswith(incident.number) for k in receivers[WORKORDER_12345].messages)
    reply = await civic.say("我的报警")
    assert "已转12345" in reply
