"""Rule-based Chinese entity extraction (nlu/text.py, nlu/entities.py, nlu/components.py)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from nlu.entities import MAX_PER_TYPE, Entity, extract_entities
from nlu.text import MAX_CHARS, fold_for_matching, normalise
from tests.fakes import fake_identity

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 5, 15, 14, 30, tzinfo=SHANGHAI)  # a Wednesday afternoon


def found(text: str, kind: str, now: datetime = NOW) -> list[Entity]:
    return [e for e in extract_entities(text, now) if e.entity == kind]


def values(text: str, kind: str) -> list[Any]:
    return [e.value for e in found(text, kind)]


def to_full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# --- nlu/text.py ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("昨晚十點在漕溪北路88號，兩個人打架", "昨晚十点在漕溪北路88号，两个人打架"),
        ("電話１３８１２３４５６７８", "电话13812345678"),
        ("ＡＢＣ　ｘｙｚ", "ABC xyz"),
        ("救命！有人吗？（急）", "救命！有人吗？（急）"),  # Chinese punctuation is kept
        ("有人\x00打\x07架\u200b了", "有人打架了"),
        ("  有人   打架 \t 了  ", "有人 打架 了"),
        ("第一行\r\n\r\n\n  第二行", "第一行\n第二行"),
        ("", ""),
        # One character at a time (often deaf users): the words come back together.
        ("我 家 门 被 撬 东西 没", "我家门被撬东西没"),
        ("欠 我 钱 的 人 说 要 杀 我 全 家 他 现在 在 楼 下", "欠我钱的人说要杀我全家他现在在楼下"),
        ("我 在 line 2 上 手 机 被 偷", "我在 line 2 上手机被偷"),
        # Spaces between phrases are how many people write commas: they stay.
        ("电瓶车没了 锁也不见了 我在杨浦", "电瓶车没了 锁也不见了 我在杨浦"),
        ("有 人 打 我", "有人打我"),
        ("救 命", "救命"),
        ("着 火 了", "着火了"),
        ("报警 救命", "报警 救命"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_normalise_caps_length() -> None:
    assert len(normalise("报警" * 5000)) == MAX_CHARS
    assert len(normalise("报 " * 5000)) == MAX_CHARS


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_fold_keeps_length(text: str) -> None:
    assert len(fold_for_matching(text)) == len(text)


# --- time ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("刚才有人抢我包", "2024-05-15T14:30:00+08:00"),
        ("就在刚才", "2024-05-15T14:30:00+08:00"),
        ("他们正在打架", "2024-05-15T14:30:00+08:00"),
        ("十分钟前", "2024-05-15T14:20:00+08:00"),
        ("半小时前", "2024-05-15T14:00:00+08:00"),
        ("两个小时前", "2024-05-15T12:30:00+08:00"),
        ("一个半小时以前", "2024-05-15T13:00:00+08:00"),
        ("昨晚十点", "2024-05-14T22:00:00+08:00"),
        ("今天下午三点", "2024-05-15T15:00:00+08:00"),
        ("上周五", "2024-05-10T00:00:00+08:00"),
        ("前天晚上", "2024-05-13T18:00:00+08:00"),
        ("凌晨两点", "2024-05-15T02:00:00+08:00"),
        ("10:30", "2024-05-15T10:30:00+08:00"),
        ("昨天下午四点半左右", "2024-05-14T16:30:00+08:00"),
        ("三天前", "2024-05-12T00:00:00+08:00"),
        ("两点", "2024-05-15T14:00:00+08:00"),  # said at 14:30: this afternoon, not 02:00
        ("晚上十一点左右", "2024-05-14T23:00:00+08:00"),  # tonight is still to come
        ("周五晚上", "2024-05-10T18:00:00+08:00"),  # on a Wednesday: last Friday
        ("今晚", "2024-05-15T18:00:00+08:00"),
        ("昨晚十點", "2024-05-14T22:00:00+08:00"),  # Traditional
        ("１０：３０", "2024-05-15T10:30:00+08:00"),  # full-width
    ],
)
def test_time(text: str, start: str) -> None:
    assert values(text, "time") == [start]


def test_time_details_and_approximation() -> None:
    (just_now,) = found("刚刚", "time")
    assert just_now.detail is not None and just_now.detail["approximate"] is True
    assert just_now.confidence < 1
    (evening,) = found("昨晚十点", "time")
    assert evening.detail is not None
    assert evening.detail["end_time"] == "2024-05-14T22:59:59+08:00"


def test_time_uses_shanghai_even_if_now_is_utc() -> None:
    utc_now = NOW.astimezone(ZoneInfo("UTC"))
    assert values("十分钟前", "time") == [e.value for e in found("十分钟前", "time", utc_now)]


@pytest.mark.parametrize(
    "text",
    ["有一点事", "他一时冲动", "南京西路1266弄3号", "3号楼", "地铁2号线", "我今年35岁", "12345"],
)
def test_no_time(text: str) -> None:
    assert values(text, "time") == []


# --- phone, ID number, plate --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("我的电话13812345678", "13812345678"),
        ("电话 138 1234 5678 快来", "13812345678"),
        ("138-1234-5678", "13812345678"),
        ("+86 139 1234 5678", "13912345678"),
        ("座机021-64381234", "02164381234"),
        ("(021)64381234", "02164381234"),
        ("電話１３８１２３４５６７８", "13812345678"),
    ],
)
def test_phone(text: str, phone: str) -> None:
    assert values(text, "phone") == [phone]


@pytest.mark.parametrize("text", ["订单号1381234567890", "12345", "QQ号1234567890", "12812345678"])
def test_no_phone(text: str) -> None:
    assert values(text, "phone") == []


@pytest.mark.parametrize("seed", range(12))
def test_id_number_from_fakes(seed: int) -> None:
    identity = fake_identity(seed)
    text = f"我叫{identity.name}，身份证{identity.id_number}，电话{identity.phone}"
    assert values(text, "id_number") == [identity.id_number]
    assert values(text, "phone") == [identity.phone]  # not a phone inside the ID number


def _fake_id_ending_in_x() -> str:
    """fake_identity never yields a check digit X, so vary a fake's sequence number until it does."""
    prefix = fake_identity(0).id_number[:14]
    candidates = (f"{prefix}{sequence:03d}X" for sequence in range(1000))
    # calc_check_digit ignores the last character: it expects the check digit to be included
    return next(c for c in candidates if ric.calc_check_digit(c) == "X" and ric.is_valid(c))


def test_id_number_formats() -> None:
    id_number = fake_identity(1).id_number
    spaced = f"{id_number[:6]} {id_number[6:14]} {id_number[14:]}"
    assert values(f"身份证号 {spaced}", "id_number") == [id_number]
    assert values(f"身份证{to_full_width(id_number)}", "id_number") == [id_number]
    with_x = _fake_id_ending_in_x()
    assert values(f"身份证{with_x.lower()}", "id_number") == [with_x]


def test_id_number_with_bad_checksum_is_not_extracted() -> None:
    id_number = fake_identity(3).id_number
    wrong = id_number[:-1] + ("0" if id_number[-1] != "0" else "1")
    entities = extract_entities(f"身份证{wrong}", NOW)
    assert [e.entity for e in entities] == []


@pytest.mark.parametrize(
    ("text", "plate"),
    [
        ("车牌沪A12345撞了人", "沪A12345"),
        ("沪AD12345", "沪AD12345"),
        ("浙B12345D", "浙B12345D"),
        ("沪a 12345", "沪A12345"),
        ("苏E·12345", "苏E12345"),
        ("京A1234挂", "京A1234挂"),
        ("滬Ａ１２３４５", "沪A12345"),
    ],
)
def test_vehicle_plate(text: str, plate: str) -> None:
    assert values(text, "vehicle_plate") == [plate]


@pytest.mark.parametrize("text", ["新iPhone", "沪A123", "沪A123456", "京ABCDEF"])
def test_no_vehicle_plate(text: str) -> None:
    assert values(text, "vehicle_plate") == []


# --- people, weapons, injuries ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("两个人在打架", 2),
        ("三个男的", 3),
        ("一群人", "many"),
        ("一伙人冲进来", "many"),
        ("五六个人", 5),
        ("十几个人", 10),
        ("2个人", 2),
        ("两名男子", 2),
        ("二十多人", 20),
        ("兩個人", 2),
    ],
)
def test_people_count(text: str, count: int | str) -> None:
    assert values(text, "people_count") == [count]


@pytest.mark.parametrize("text", ["人民广场", "个人信息", "有人打架", "两个小时前"])
def test_no_people_count(text: str) -> None:
    assert values(text, "people_count") == []


@pytest.mark.parametrize(
    ("text", "weapon"),
    [
        ("他拿着菜刀", "菜刀"),
        ("掏出一把水果刀", "水果刀"),
        ("拿砍刀砍人", "砍刀"),
        ("手里有匕首", "匕首"),
        ("拿棍子打人", "棍子"),
        ("用啤酒瓶砸头", "酒瓶"),
        ("他有枪", "枪"),
        ("拿着刀子", "刀"),
        ("用钢管打", "铁棍"),
    ],
)
def test_weapon(text: str, weapon: str) -> None:
    assert values(text, "weapon") == [weapon]


@pytest.mark.parametrize("text", ["我在吃刀削面", "他是个光棍", "玩水枪", "石头剪刀布"])
def test_no_weapon(text: str) -> None:
    assert values(text, "weapon") == []


@pytest.mark.parametrize("text", ["他没拿刀", "手里没有武器", "没有带刀", "他是徒手打的"])
def test_weapon_negated(text: str) -> None:
    assert values(text, "weapon") == []
    assert values(text, "weapon_negated") == [True]


@pytest.mark.parametrize(
    ("text", "injury"),
    [
        ("他流血了", "流血"),
        ("我朋友受伤了", "受伤"),
        ("腿骨折了", "骨折"),
        ("老人昏迷了", "昏迷"),
        ("有人晕倒了", "昏迷"),
        ("头破了", "头破"),
        ("被砍伤", "砍伤"),
        ("不省人事", "昏迷"),
        ("他没有呼吸了", "没有呼吸"),
        ("没想到他受伤了", "受伤"),
        ("我没事，他流血了", "流血"),
    ],
)
def test_injury(text: str, injury: str) -> None:
    assert values(text, "injury") == [injury]
    assert values(text, "injury_negated") == []


@pytest.mark.parametrize(
    "text", ["没有人受伤", "没受伤", "没流血", "无人受伤", "人没事", "無人受傷"]
)
def test_injury_negated(text: str) -> None:
    assert values(text, "injury") == []
    assert values(text, "injury_negated") == [True]


@pytest.mark.parametrize("text", ["不知道有没有人受伤", "他受伤了吗", "有人受伤没有？"])
def test_injury_uncertain_is_neither(text: str) -> None:
    assert values(text, "injury") == []
    assert values(text, "injury_negated") == []


# --- address ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("在漕溪北路88号", {"road": "漕溪北路", "number": "88号"}),
        ("南京西路1266弄3号有人打架", {"road": "南京西路", "lane": "1266弄", "number": "3号"}),
        (
            "徐汇区漕溪北路88号",
            {"county": "徐汇区", "city": "上海市", "road": "漕溪北路", "detail": "漕溪北路88号"},
        ),
        ("浦东新区张杨路500号", {"county": "浦东新区", "road": "张杨路", "number": "500号"}),
        (
            "我住在阳光花园5号楼302室",
            {"community": "阳光花园", "building": "5号楼", "room": "302室"},
        ),
        ("曹杨新村", {"community": "曹杨新村"}),
        ("地铁2号线人民广场站", {"line": 2, "station": "人民广场"}),
        ("在十号线新天地站", {"line": 10, "station": "新天地"}),
        ("人民广场地铁站", {"station": "人民广场"}),
        ("在外滩", {"landmark": "外滩"}),
        ("闵行区七宝镇七莘路3655号", {"county": "闵行区", "town": "七宝镇", "road": "七莘路"}),
        ("漕溪北路和中山南二路路口", {"road": "漕溪北路", "cross_road": "中山南二路"}),
        ("在一條不知名的淮海中路", {"road": "淮海中路"}),
    ],
)
def test_address(text: str, expected: dict[str, Any]) -> None:
    (address,) = values(text, "address")
    assert {key: address.get(key) for key in expected} == expected
    assert address["text"]


@pytest.mark.parametrize(
    "text", ["在马路上", "过马路", "上班路上", "去医院", "我们小区门口", "逛街"]
)
def test_no_address(text: str) -> None:
    assert values(text, "address") == []


# --- the whole message --------------------------------------------------------------------------


def test_full_report_in_traditional_with_offsets() -> None:
    text = "我昨晚十點在徐匯區漕溪北路88號被兩個人打了，頭破了，電話１３８ １２３４ ５６７８"
    entities = extract_entities(text, NOW)
    assert [e.entity for e in entities] == ["time", "address", "people_count", "injury", "phone"]
    for entity in entities:
        assert text[entity.start : entity.end] == entity.text
    assert entities[-1].value == "13812345678"


def test_time_inside_address_is_not_a_time() -> None:
    kinds = [e.entity for e in extract_entities("南京西路1266弄3号", NOW)]
    assert kinds == ["address"]


@pytest.mark.parametrize(
    "text",
    ["今天" * 1000, "1" * 10_000, "刀" * 10_000, "<html><body>" * 500, "沪A12345" * 500, ""],
)
def test_adversarial_input_is_fast_and_bounded(text: str) -> None:
    started = time.perf_counter()
    entities = extract_entities(text, NOW)
    assert time.perf_counter() - started < 1.0
    for kind in {e.entity for e in entities}:
        assert sum(e.entity == kind for e in entities) <= MAX_PER_TYPE


CUE_CHARS = "0123456789１２３刀枪棍没有人受伤流血沪A号路弄区站线点昨晚刚才个两三十几 ，。\n\x00😀<>"


@given(st.one_of(st.text(max_size=400), st.text(alphabet=CUE_CHARS, max_size=400)))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_extract_entities_never_raises(text: str) -> None:
    entities = extract_entities(text, NOW)
    for entity in entities:
        assert 0 <= entity.start < entity.end <= len(text)
        assert text[entity.start : entity.end] == entity.text
    starts = [e.start for e in entities]
    assert starts == sorted(starts)


def test_non_string_input_gives_nothing() -> None:
    assert extract_entities(None, NOW) == []  # type: ignore[arg-type]


# --- Rasa component -----------------------------------------------------------------------------


def test_component_adds_entities_to_message(tmp_path) -> None:
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.nlu.training_data.message import Message

    from nlu.components import ChineseRuleEntityExtractor

    config = {
        **ChineseRuleEntityExtractor.get_default_config(),
        "time_base": "2024-05-15T14:30:00+08:00",
    }
    component = ChineseRuleEntityExtractor.create(
        config,
        LocalModelStorage(tmp_path),
        Resource("rule_entities"),
        ExecutionContext(GraphSchema({})),
    )
    earlier = {"entity": "other", "start": 0, "end": 1, "value": "x", "extractor": "DIET"}
    message = Message(data={"text": "十分钟前在徐汇区漕溪北路88号两个人打架，电话13812345678"})
    message.set("entities", [earlier])
    empty = Message(data={"text": ""})

    component.process([message, empty])

    entities = message.get("entities")
    assert entities[0] == earlier
    ours = {e["entity"]: e for e in entities[1:]}
    assert set(ours) == {"time", "address", "people_count", "phone"}
    assert ours["time"]["value"] == "2024-05-15T14:20:00+08:00"
    assert ours["phone"]["value"] == "13812345678"
    assert ours["address"]["value"]["county"] == "徐汇区"
    for entity in ours.values():
        assert entity["extractor"] == "ChineseRuleEntityExtractor"
        assert 0 < entity["confidence_entity"] <= 1
        assert message.get("text")[entity["start"] : entity["end"]]
    assert empty.get("entities") == []

    only_phone = ChineseRuleEntityExtractor({"dimensions": ["phone"]})
    (phone_message,) = only_phone.process([Message(data={"text": message.get("text")})])
    assert [e["entity"] for e in phone_message.get("entities")] == ["phone"]


def test_the_tokenizer_reads_typed_and_training_text_alike(tmp_path: Any) -> None:
    """Half-width '!!!', full-width '！！！' and Traditional script give the same tokens, at
    offsets into the text as sent (train/serve skew swayed the model: 外婆走丢了!!!! → threat)."""
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.nlu.training_data.message import Message

    from nlu.components import FoldingJiebaTokenizer

    tokenizer = FoldingJiebaTokenizer.create(
        {**FoldingJiebaTokenizer.get_default_config(), "dictionary_path": "nlu/dictionaries"},
        LocalModelStorage(tmp_path),
        Resource("tokenizer"),
        ExecutionContext(GraphSchema({})),
    )

    def tokens(text: str) -> list[tuple[str, int]]:
        return [(t.text, t.start) for t in tokenizer.tokenize(Message(data={"text": text}), "text")]

    assert tokens("外婆走丢了!!!") == tokens("外婆走丢了！！！")
    assert [t for t, _ in tokens("錢包被偷了")] == [t for t, _ in tokens("钱包被偷了")]
    sent = "ＡＢＣ小區 門口"
    assert tokens(sent)[0] == ("ABC", 0)
    for word, start in tokens(sent):
        assert fold_for_matching(sent)[start : start + len(word)] == word
    assert tokens("") == []
