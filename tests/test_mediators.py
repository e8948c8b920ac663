"""The mediator roster: checking files, who is on duty, rotation, and falling back to neighbours."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.mediators import (
    DISTRICTS,
    EXAMPLE_FILE,
    NEIGHBOURS,
    Mediator,
    Reach,
    Roster,
    RosterError,
    import_roster,
    normalise_district,
)
from routing.schedule import MediationSchedule, PlanMode
from routing.workdays import WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkCalendar.from_file(on_missing_year=lambda year: None)
EXAMPLE = import_roster(EXAMPLE_FILE).with_calendar(CALENDAR)
MONDAY = datetime(2026, 3, 9, 10, 0, tzinfo=SH)
TUESDAY = MONDAY + timedelta(days=1)


def entry(ident: str, districts: Any = ("徐汇区",), duty: Any = ("mon",), **extra: Any) -> dict:
    """A valid entry with a fake phone derived from the id (same every run)."""
    phone = f"138000{int.from_bytes(ident.encode(), 'big') % 100000:05d}"
    return {
        "id": ident,
        "name": f"示例{ident}",
        "phone": phone,
        "districts": list(districts),
        "duty": list(duty),
        **extra,
    }


def roster(*entries: dict, calendar: WorkCalendar | None = CALENDAR, **top: Any) -> Roster:
    return Roster.from_dict({"mediators": list(entries), **top}, calendar=calendar)


# ------------------------------------------------------------------ the example file


def test_example_roster_is_valid_and_clearly_fake() -> None:
    assert len(EXAMPLE) == 19
    for mediator in EXAMPLE.mediators:
        assert mediator.phone.startswith("1380000"), mediator.id
        assert "示例" in mediator.name
        assert set(mediator.districts) <= set(DISTRICTS)
    assert EXAMPLE.get("xh-03") is not None and not EXAMPLE.get("xh-03").active
    covered = {d for m in EXAMPLE.mediators if m.active for d in m.districts}
    assert set(DISTRICTS) - covered == {"金山区", "崇明区"}  # on purpose: shows the fallback


def test_import_roster_only_reads(tmp_path: Path) -> None:
    path = tmp_path / "roster.yml"
    path.write_bytes(EXAMPLE_FILE.read_bytes())
    before = sorted(p.name for p in tmp_path.iterdir())
    imported = import_roster(path)
    assert isinstance(imported, Roster) and len(imported) == 19
    assert imported.calendar is None
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert path.read_bytes() == EXAMPLE_FILE.read_bytes()


# ------------------------------------------------------------------ districts


def test_neighbours_cover_every_district_and_are_mutual() -> None:
    assert set(NEIGHBOURS) == set(DISTRICTS) and len(DISTRICTS) == 16
    for district, neighbours in NEIGHBOURS.items():
        assert district not in neighbours
        assert len(set(neighbours)) == len(neighbours)
        for other in neighbours:
            assert district in NEIGHBOURS[other], (district, other)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("徐汇区", "徐汇区"),
        ("徐汇", "徐汇区"),
        (" 上海市徐汇区 ", "徐汇区"),
        ("浦东", "浦东新区"),
        ("浦东新区", "浦东新区"),
        ("浦东区", "浦东新区"),
        ("闸北区", "静安区"),
        ("闸北", "静安区"),
        ("卢湾区", "黄浦区"),
        ("南汇", "浦东新区"),
        ("崇明县", None),
        ("朝阳区", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_district(text: str | None, expected: str | None) -> None:
    assert normalise_district(text) == expected


# ------------------------------------------------------------------ checking a file


def test_friendly_spellings_are_accepted() -> None:
    loaded = roster(
        {
            "id": "a-1",
            "name": "示例甲",
            "phone": "+86 138-0000-0101",
            "districts": "徐汇、长宁",
            "duty": ["周一", "星期三", "周天", "FRI"],
            "active": "是",
        }
    )
    mediator = loaded.get("a-1")
    assert mediator.phone == "13800000101"
    assert mediator.districts == ("徐汇区", "长宁区")
    assert mediator.duty == frozenset({0, 2, 6, 4})
    assert mediator.active


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        ([entry("a", districts=["徐汇县"])], "unknown district '徐汇县'"),
        ([entry("a", districts=["朝阳区"])], "(one of 黄浦区、徐汇区"),
        ([entry("a", districts=[])], "no districts"),
        ([entry("a"), entry("a")], "duplicate id 'a'"),
        ([{**entry("a"), "phone": "12345"}], "phone is not a mainland mobile number"),
        ([{**entry("a"), "phone": "021-64000000"}], "not a mainland mobile number (not_mobile)"),
        ([{**entry("a"), "phone": "+44 7700 900123"}], "(not_mainland)"),
        ([{**entry("a"), "phone": "1380000010x"}], "(characters)"),
        ([entry("a", duty=["monday"])], "unknown weekday 'monday'"),
        ([{**entry("a"), "district": "徐汇区"}], "unknown key 'district'"),
        ([{k: v for k, v in entry("a").items() if k != "name"}], "missing 'name'"),
        ([{k: v for k, v in entry("a").items() if k != "phone"}], "missing 'phone'"),
        ([{**entry("a"), "id": "徐汇 1"}], "id '徐汇 1' must be"),
        ([{**entry("a"), "active": "maybe"}], "active must be true or false"),
        ([], "'mediators' must be a non-empty list"),
        (["just a name"], "expected a mapping"),
    ],
)
def test_bad_entries_are_refused_with_a_clear_message(entries: list, fragment: str) -> None:
    with pytest.raises(RosterError) as caught:
        Roster.from_dict({"mediators": entries})
    assert fragment in str(caught.value)


def test_unknown_top_level_keys_and_rota_are_refused() -> None:
    with pytest.raises(RosterError) as caught:
        Roster.from_dict({"mediators": [entry("a")], "makeup_day_rota": "holiday", "x": 1})
    assert "unknown key 'x'" in str(caught.value)
    assert "makeup_day_rota: unknown weekday 'holiday'" in str(caught.value)


def test_every_problem_is_reported_at_once_with_where_it_is() -> None:
    bad = [entry("ok"), entry("b", districts=["火星区"], duty=["someday"]), entry("ok")]
    bad[1]["phone"] = "0"
    with pytest.raises(RosterError) as caught:
        Roster.from_dict({"mediators": bad}, origin="roster.yml")
    problems = caught.value.problems
    assert len(problems) == 4
    assert any(p.startswith("mediator #2 (b): unknown district '火星区'") for p in problems)
    assert any(p.startswith("mediator #2 (b): phone") for p in problems)
    assert any(p.startswith("mediator #2 (b): unknown weekday") for p in problems)
    assert any("mediator #3: duplicate id 'ok' (also mediator #1)" in p for p in problems)
    assert str(caught.value).startswith("roster.yml: ")


def test_a_roster_built_in_code_is_checked_too() -> None:
    one = Mediator("a", "示例", "13800000101", ("徐汇区",), frozenset({0}))
    with pytest.raises(RosterError, match="duplicate id 'a'"):
        Roster([one, one])
    with pytest.raises(RosterError, match="unknown district '徐汇'"):
        Roster([Mediator("b", "示例", "13800000102", ("徐汇",), frozenset({0}))])


def test_yaml_duplicate_keys_and_broken_yaml_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.yml"
    path.write_text("mediators:\n  - id: a\n    id: b\n", encoding="utf-8")
    with pytest.raises(RosterError, match="duplicate key 'id'"):
        import_roster(path)
    path.write_text("mediators: [\n", encoding="utf-8")
    with pytest.raises(RosterError, match="not valid YAML"):
        import_roster(path)
    with pytest.raises(RosterError, match="cannot read"):
        import_roster(tmp_path / "missing.yml")


def test_csv_from_a_spreadsheet(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(
        "\ufeffid,name,phone,districts,duty,active\n"
        "xh-9,示例甲,138 0000 0901,徐汇区、长宁区,mon;wed,是\n"
        "xh-8,示例乙,13800000902,徐汇,周二 周四,\n"
        ",,,,,\n",
        encoding="utf-8",
    )
    loaded = import_roster(path)
    assert [m.id for m in loaded.mediators] == ["xh-8", "xh-9"]
    assert loaded.get("xh-9").districts == ("徐汇区", "长宁区")
    assert loaded.get("xh-9").duty == frozenset({0, 2})
    assert loaded.get("xh-8").active  # empty cell: the default
    path.write_text("id,name,mobile\n", encoding="utf-8")
    with pytest.raises(RosterError, match="unknown CSV column 'mobile'"):
        import_roster(path)


def test_the_phone_never_shows_in_repr() -> None:
    mediator = EXAMPLE.get("xh-01")
    assert mediator.phone not in repr(mediator)
    assert mediator.phone not in repr(EXAMPLE.next_candidate("徐汇区", MONDAY))
    assert mediator.masked_phone == "138****0201"


# ------------------------------------------------------------------ who is on duty


def test_on_duty_follows_the_weekday_rota_and_skips_inactive() -> None:
    assert [m.id for m in EXAMPLE.on_duty("徐汇区", MONDAY)] == ["xh-01"]  # xh-03 inactive
    assert [m.id for m in EXAMPLE.on_duty("徐汇区", TUESDAY)] == ["xh-02"]
    assert [m.id for m in EXAMPLE.on_duty("徐汇", TUESDAY)] == ["xh-02"]
    assert sorted(m.id for m in EXAMPLE.on_duty("杨浦区", MONDAY)) == ["hk-01", "yp-01"]
    assert EXAMPLE.on_duty("崇明区", MONDAY) == []
    assert EXAMPLE.on_duty("徐汇区", datetime(2026, 3, 7, 10, tzinfo=SH)) == []  # Saturday


def test_nobody_is_on_duty_on_a_holiday_weekday() -> None:
    national_day = datetime(2025, 10, 1, 10, tzinfo=SH)  # a Wednesday
    assert all(EXAMPLE.on_duty(d, national_day) == [] for d in DISTRICTS)
    assert EXAMPLE.next_candidate("徐汇区", national_day) is None
    # without a calendar the rota is read by plain weekday
    plain = import_roster(EXAMPLE_FILE)
    assert [m.id for m in plain.on_duty("徐汇区", national_day)] == ["xh-01"]


def test_a_makeup_working_weekend_follows_the_configured_rota() -> None:
    sunday = datetime(2025, 9, 28, 10, tzinfo=SH)  # 调休: works for 国庆节
    saturday = datetime(2026, 2, 14, 10, tzinfo=SH)  # 调休: works for 春节
    assert [m.id for m in EXAMPLE.on_duty("徐汇区", sunday)] == ["xh-01"]  # Monday's rota
    assert [m.id for m in EXAMPLE.on_duty("徐汇区", saturday)] == ["xh-01"]
    entries = [entry("m", duty=["mon"]), entry("t", duty=["thu"])]
    thursday_rota = roster(*entries, makeup_day_rota="周四")
    assert [m.id for m in thursday_rota.on_duty("徐汇区", sunday)] == ["t"]
    assert roster(*entries, calendar=None).on_duty("徐汇区", sunday) == []  # no calendar


def test_on_duty_reads_the_day_in_shanghai() -> None:
    # Monday 23:30 UTC is Tuesday 07:30 in Shanghai
    late = datetime(2026, 3, 9, 23, 30, tzinfo=timezone.utc)
    assert [m.id for m in EXAMPLE.on_duty("徐汇区", late)] == ["xh-02"]


def test_on_duty_refuses_naive_times_and_unknown_districts() -> None:
    with pytest.raises(ValueError, match="aware"):
        EXAMPLE.on_duty("徐汇区", datetime(2026, 3, 9, 10))
    with pytest.raises(ValueError, match="unknown district"):
        EXAMPLE.on_duty("朝阳区", MONDAY)


def test_order_is_stable_within_a_day_and_rotates_between_days() -> None:
    three = roster(*(entry(i, duty=["mon", "tue", "wed", "thu", "fri"]) for i in ("c", "a", "b")))
    morning = [m.id for m in three.on_duty("徐汇区", MONDAY.replace(hour=9))]
    assert sorted(morning) == ["a", "b", "c"]
    for hour in (0, 12, 16, 23):
        assert [m.id for m in three.on_duty("徐汇区", MONDAY.replace(hour=hour))] == morning
    firsts = [three.on_duty("徐汇区", MONDAY + timedelta(days=i))[0].id for i in range(5)]
    assert set(firsts) == {"a", "b", "c"}  # the first call moves from day to day
    for i in range(4):  # and each day is a rotation of the id order
        ids = [m.id for m in three.on_duty("徐汇区", MONDAY + timedelta(days=i))]
        start = ids.index("a")
        assert ids[start:] + ids[:start] == ["a", "b", "c"]


# ------------------------------------------------------------------ the next candidate


def test_declined_or_unanswered_moves_to_the_next_then_a_neighbour() -> None:
    tried: set[str] = set()
    first = EXAMPLE.next_candidate("闵行区", MONDAY, tried)
    assert first.reach is Reach.DISTRICT and first.district == "闵行区"
    assert first.reason == "闵行区值班调解员"
    tried.add(first.mediator.id)

    second = EXAMPLE.next_candidate("闵行区", MONDAY, tried)
    assert second.reach is Reach.DISTRICT
    assert {first.mediator.id, second.mediator.id} == {"mh-01", "mh-02"}
    assert "本区已联系1人未接单，顺延下一位" in second.reason
    tried.add(second.mediator.id)

    third = EXAMPLE.next_candidate("闵行区", MONDAY, tried)
    assert third.reach is Reach.NEIGHBOUR
    assert (third.district, third.mediator.id) == ("徐汇区", "xh-01")  # first listed neighbour
    assert third.reason == "闵行区今日2名值班调解员都已联系、未接单，转相邻的徐汇区值班调解员"


def test_a_district_with_nobody_falls_back_to_its_neighbour() -> None:
    chongming = EXAMPLE.next_candidate("崇明区", MONDAY)
    assert chongming.reach is Reach.NEIGHBOUR and chongming.district == "宝山区"
    assert chongming.reason == "崇明区今日无值班调解员，转相邻的宝山区值班调解员"
    jinshan = EXAMPLE.next_candidate("金山区", MONDAY)
    assert (jinshan.district, jinshan.mediator.id) == ("松江区", "sj-01")
    # 奉贤区 has nobody on Monday (tue/thu only): 闵行区 is its first neighbour
    fengxian = EXAMPLE.next_candidate("奉贤区", MONDAY)
    assert fengxian.district == "闵行区" and fengxian.reach is Reach.NEIGHBOUR


def test_no_neighbour_either_falls_back_to_any_district() -> None:
    far = roster(entry("cm-1", districts=["崇明区"]), entry("jd-1", districts=["嘉定区"]))
    got = far.next_candidate("金山区", MONDAY)
    assert got.reach is Reach.ANY and got.district == "嘉定区"  # 金山 borders 松江, 奉贤 only
    assert got.reason == "金山区今日无值班调解员，相邻区也无可用调解员，转嘉定区值班调解员"
    assert far.next_candidate("金山区", MONDAY, {"jd-1"}).district == "崇明区"
    assert far.next_candidate("金山区", MONDAY, {"jd-1", "cm-1"}) is None


@pytest.mark.parametrize("district", [None, "", "朝阳区"])
def test_an_unknown_district_goes_to_anyone_on_duty(district: str | None) -> None:
    got = EXAMPLE.next_candidate(district, MONDAY)
    assert got.reach is Reach.ANY and got.district == "黄浦区"
    assert got.reason.startswith("区县不明")
    if district:
        assert district in got.reason


def test_everyone_tried_means_none() -> None:
    everyone = {m.id for m in EXAMPLE.mediators}
    assert EXAMPLE.next_candidate("徐汇区", MONDAY, everyone) is None


@settings(max_examples=150, deadline=None)
@given(
    district=st.sampled_from(DISTRICTS),
    day=st.dates(date(2025, 1, 1), date(2027, 6, 30)),
    hour=st.integers(0, 23),
)
def test_asking_until_none_reaches_everyone_on_duty_once_own_district_first(
    district: str, day: date, hour: int
) -> None:
    at = datetime(day.year, day.month, day.day, hour, tzinfo=SH)
    on_duty_anywhere = {m.id for d in DISTRICTS for m in EXAMPLE.on_duty(d, at)}
    own = [m.id for m in EXAMPLE.on_duty(district, at)]
    tried: list[str] = []
    reaches: list[Reach] = []
    while (got := EXAMPLE.next_candidate(district, at, tried)) is not None:
        assert got.mediator.id not in tried
        assert got.mediator.active
        assert got.mediator in EXAMPLE.on_duty(got.district, at)
        tried.append(got.mediator.id)
        reaches.append(got.reach)
    assert set(tried) == on_duty_anywhere and len(tried) == len(set(tried))
    assert tried[: len(own)] == own
    assert reaches == sorted(reaches, key=[Reach.DISTRICT, Reach.NEIGHBOUR, Reach.ANY].index)


# ------------------------------------------------------------------ with the schedule


def test_a_booking_goes_to_whoever_is_on_duty_at_the_next_opening() -> None:
    schedule = MediationSchedule(CALENDAR)
    friday_evening = datetime(2026, 3, 6, 19, 0, tzinfo=SH)
    plan = schedule.plan(friday_evening)
    assert plan.mode is PlanMode.BOOKING and plan.rota_at == MONDAY.replace(hour=9)
    got = EXAMPLE.next_candidate("徐汇区", plan.rota_at)
    assert got.mediator.id == "xh-01"  # Monday's duty mediator gets the push now

    before_holiday = datetime(2025, 9, 30, 18, 0, tzinfo=SH)
    plan = schedule.plan(before_holiday)
    assert plan.rota_at == datetime(2025, 10, 9, 9, tzinfo=SH)  # Thursday after 国庆节
    assert EXAMPLE.next_candidate("徐汇区", plan.rota_at).mediator.id == "xh-02"
