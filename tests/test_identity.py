"""routing.identity: ID documents, names, mobiles and masking. All numbers are generated."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from stdnum.cn import ric

from routing.identity import (
    MIDDLE_DOT,
    Checked,
    IdKind,
    check_foreign_permanent_id,
    check_hk_mo_permit,
    check_hmt_residence_permit,
    check_id_document,
    check_mobile,
    check_name,
    check_resident_id,
    check_tw_permit,
    detect_id_kind,
    mask_id,
    mask_name,
    mask_phone,
    normalise_id_text,
)
from tests.fakes import MOBILE_PREFIXES, REGIONS, SURNAMES, fake_identity

TODAY = date(2025, 6, 1)
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def gb11643(body17: str) -> str:
    """Independent ISO 7064 MOD 11-2, as printed in GB 11643-1999 (not via stdnum)."""
    total = sum(int(d) * w for d, w in zip(body17, WEIGHTS, strict=True))
    return body17 + "10X98765432"[total % 11]


def resident_id(region: str = "310101", born: date = date(1990, 3, 7), seq: int = 123) -> str:
    return gb11643(f"{region}{born:%Y%m%d}{seq:03d}")


def to_full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# --------------------------------------------------------------------------- normalising


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("３１０１０１１９９００３０７１２３Ｘ", "31010119900307123X"),
        ("310101 1990 0307 123x", "31010119900307123X"),
        ("310101-19900307-123X", "31010119900307123X"),
        ("  h1234 5678 ", "H12345678"),
        ("\u3000310101\u200b19900307123x\n", "31010119900307123X"),
        ("310101－19900307—123x", "31010119900307123X"),
        ("", ""),
    ],
)
def test_normalise_id_text(raw: str, expected: str) -> None:
    assert normalise_id_text(raw) == expected


# --------------------------------------------------------------------------- resident ID


def test_check_digit_helper_agrees_with_stdnum() -> None:
    for seed in range(200):
        number = fake_identity(seed).id_number
        assert gb11643(number[:17]) == number
        assert ric.calc_check_digit(number) == number[-1]


@pytest.mark.parametrize("seed", range(30))
def test_generated_fake_identities_are_valid_in_every_spelling(seed: int) -> None:
    number = fake_identity(seed).id_number
    spellings = [
        number,
        number.lower(),
        to_full_width(number),
        f" {number[:6]} {number[6:14]} {number[14:]} ",
        f"{number[:6]}-{number[6:14]}-{number[14:]}",
    ]
    for text in spellings:
        result = check_resident_id(text, today=TODAY)
        assert result == Checked.good(number, IdKind.RESIDENT_ID), text
        assert check_id_document(text, today=TODAY).ok


def test_an_x_check_digit_is_accepted_lower_or_upper_case() -> None:
    number = next(n for n in (resident_id(seq=s) for s in range(1000)) if n.endswith("X"))
    assert check_resident_id(number.lower(), today=TODAY).value == number


def test_wrong_check_digit_says_check_the_last_digit() -> None:
    number = resident_id()
    wrong = number[:-1] + ("0" if number[-1] != "0" else "1")
    result = check_resident_id(wrong, today=TODAY)
    assert (result.ok, result.reason, result.value) == (False, "checksum", "")
    assert result.hint.startswith("校验位不对，请核对最后一位")


@pytest.mark.parametrize(
    ("text", "reason", "in_hint"),
    [
        ("", "empty", "18位"),
        ("   ", "empty", "18位"),
        ("31010119900307123", "length", "您输入了17位"),
        ("3101011990030712345", "length", "您输入了19位"),
        ("310101900307123", "old_15_digit", "15位"),
        ("31010119900307X234", "characters", "最后一位是数字或字母X"),
        ("31010119900307123A", "characters", "字母X"),
        ("3101011990O307123X", "characters", "数字"),
        ("3101O119900307123X", "characters", "数字"),
    ],
)
def test_resident_id_shape_failures(text: str, reason: str, in_hint: str) -> None:
    result = check_resident_id(text, today=TODAY)
    assert (result.ok, result.reason, result.value) == (False, reason, "")
    assert in_hint in result.hint


@pytest.mark.parametrize("birth", ["19901307", "19900230", "19900000", "18991231", "00000000"])
def test_impossible_birth_dates(birth: str) -> None:
    number = gb11643(f"310101{birth}123")
    result = check_resident_id(number, today=TODAY)
    assert result.reason == "birth_date" and "出生日期" in result.hint


def test_birth_date_is_judged_against_the_injected_today() -> None:
    born_today = resident_id(born=TODAY)
    born_tomorrow = resident_id(born=TODAY + timedelta(days=1))
    assert check_resident_id(born_today, today=TODAY).ok
    future = check_resident_id(born_tomorrow, today=TODAY)
    assert future.reason == "future_birth_date" and "晚于今天" in future.hint
    assert check_resident_id(born_tomorrow, today=TODAY + timedelta(days=1)).ok


def test_unknown_region_codes() -> None:
    for region in ("310199", "000000", "100000", "660000"):
        result = check_resident_id(resident_id(region=region), today=TODAY)
        assert result.reason == "region" and "前6位" in result.hint, region


def test_region_code_created_after_the_birth_year_is_accepted() -> None:
    """浦东新区 (310115) dates from 1992; someone born there in 1985 carries it.

    stdnum rejects this (it ties the region code to the birth year); we must not.
    """
    number = resident_id(region="310115", born=date(1985, 1, 1))
    assert not ric.is_valid(number)
    assert check_resident_id(number, today=TODAY).ok


def test_a_date_typo_is_reported_as_a_date_not_as_a_checksum() -> None:
    number = resident_id()
    typo = number[:10] + "13" + number[12:]  # month 13, checksum now wrong as well
    assert check_resident_id(typo, today=TODAY).reason == "birth_date"


@given(
    region=st.sampled_from(REGIONS),
    born=st.dates(date(1900, 1, 1), TODAY),
    seq=st.integers(0, 999),
    lower=st.booleans(),
    full_width=st.booleans(),
    spaces=st.lists(st.integers(0, 18), max_size=4),
)
def test_every_valid_id_round_trips_normalise_and_check(
    region: str, born: date, seq: int, lower: bool, full_width: bool, spaces: list[int]
) -> None:
    number = resident_id(region, born, seq)
    text = number.lower() if lower else number
    text = to_full_width(text) if full_width else text
    for at in sorted(spaces, reverse=True):
        text = text[:at] + " " + text[at:]
    result = check_resident_id(text, today=TODAY)
    assert result.ok and result.value == number and result.kind is IdKind.RESIDENT_ID
    assert normalise_id_text(text) == number


@given(
    seq=st.integers(0, 999),
    born=st.dates(date(1920, 1, 1), date(2020, 12, 31)),
    position=st.integers(0, 17),
    digit=st.sampled_from("0123456789X"),
)
def test_every_single_character_change_is_caught(
    seq: int, born: date, position: int, digit: str
) -> None:
    number = resident_id("310104", born, seq)
    changed = number[:position] + digit + number[position + 1 :]
    assume(changed != number)
    assert not check_resident_id(changed, today=TODAY).ok


@given(seq=st.integers(0, 999), position=st.integers(0, 16))
def test_every_adjacent_transposition_is_caught(seq: int, position: int) -> None:
    number = resident_id("310104", date(1988, 8, 8), seq)
    swapped = number[:position] + number[position + 1] + number[position] + number[position + 2 :]
    assume(swapped != number)
    assert not check_resident_id(swapped, today=TODAY).ok


def test_a_residence_permit_or_foreign_number_is_not_a_resident_id() -> None:
    permit = gb11643("810000199003071230"[:17])
    result = check_resident_id(permit, today=TODAY)
    assert result.reason == "kind_mismatch" and "港澳台居民居住证" in result.hint
    foreign = gb11643("93184019900307123")
    assert "外国人永久居留身份证" in check_resident_id(foreign, today=TODAY).hint


# --------------------------------------------------------------------------- other documents


def foreign_new(province: str = "31", country: str = "840", born: date = date(1990, 3, 7)) -> str:
    return gb11643(f"9{province}{country}{born:%Y%m%d}123")


def test_foreign_permanent_id_2023_format() -> None:
    number = foreign_new()
    assert check_foreign_permanent_id(number, today=TODAY) == Checked.good(
        number, IdKind.FOREIGN_PERMANENT
    )
    assert check_id_document(number.lower(), today=TODAY).kind is IdKind.FOREIGN_PERMANENT
    wrong = number[:-1] + ("1" if number[-1] != "1" else "2")
    assert check_foreign_permanent_id(wrong, today=TODAY).reason == "checksum"
    assert check_foreign_permanent_id(foreign_new("99"), today=TODAY).reason == "region"
    future = foreign_new(born=TODAY + timedelta(days=1))
    assert check_foreign_permanent_id(future, today=TODAY).reason == "future_birth_date"
    bad_date = gb11643("93184019900230123")
    assert check_foreign_permanent_id(bad_date, today=TODAY).reason == "birth_date"
    not_nine = check_foreign_permanent_id(resident_id(), today=TODAY)
    assert not_nine.reason == "format" and "以9开头" in not_nine.hint


@pytest.mark.parametrize(
    ("text", "ok", "reason"),
    [
        ("USA310090030712", True, ""),
        ("usa 3100 900307 12", True, ""),
        ("GBR110001010101", True, ""),  # born 2001-01-01
        ("USA990090030712", False, "region"),
        ("USA310091330712", False, "birth_date"),
        ("US1310090030712", False, "characters"),
        ("USA31009003071", False, "length"),
        ("", False, "empty"),
    ],
)
def test_foreign_permanent_id_old_15_character_format(text: str, ok: bool, reason: str) -> None:
    result = check_foreign_permanent_id(text, today=TODAY)
    assert (result.ok, result.reason) == (ok, reason)
    assert result.ok or "15位" in result.hint or "受理地" in result.hint or "日期" in result.hint


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("H12345678", "H12345678"),
        ("m 1234 5678 01", "M1234567801"),
        ("Ｈ１２３４５６７８", "H12345678"),
    ],
)
def test_hk_mo_permit_accepts(text: str, value: str) -> None:
    assert check_hk_mo_permit(text) == Checked.good(value, IdKind.HK_MO_PERMIT)


@pytest.mark.parametrize(
    "text", ["H1234567", "H123456789", "X12345678", "HH12345678", "", "12345678"]
)
def test_hk_mo_permit_rejects(text: str) -> None:
    result = check_hk_mo_permit(text)
    assert not result.ok and "H（香港）或M（澳门）" in result.hint


@pytest.mark.parametrize(
    ("text", "value"),
    [("12345678", "12345678"), ("1234567801", "1234567801"), ("0561682001（D）", "0561682001")],
)
def test_tw_permit_accepts(text: str, value: str) -> None:
    assert check_tw_permit(text) == Checked.good(value, IdKind.TW_PERMIT)


@pytest.mark.parametrize("text", ["1234567", "123456789", "12345678(B)", "T1234567", ""])
def test_tw_permit_rejects(text: str) -> None:
    result = check_tw_permit(text)
    assert not result.ok and "8位数字" in result.hint


@pytest.mark.parametrize("region", ["810000", "820000", "830000"])
def test_hk_mo_tw_residence_permit(region: str) -> None:
    number = gb11643(f"{region}19900307123")
    assert check_hmt_residence_permit(number, today=TODAY) == Checked.good(
        number, IdKind.HMT_RESIDENCE
    )
    assert check_id_document(number, today=TODAY).kind is IdKind.HMT_RESIDENCE
    wrong = number[:-1] + ("0" if number[-1] != "0" else "1")
    assert check_hmt_residence_permit(wrong, today=TODAY).reason == "checksum"
    assert check_hmt_residence_permit(resident_id(), today=TODAY).reason == "region"
    future = gb11643(f"{region}{TODAY + timedelta(days=1):%Y%m%d}123")
    assert check_hmt_residence_permit(future, today=TODAY).reason == "future_birth_date"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("31010119900307123X", IdKind.RESIDENT_ID),
        ("310101900307123", IdKind.RESIDENT_ID),
        ("abc", IdKind.RESIDENT_ID),
        ("h12345678", IdKind.HK_MO_PERMIT),
        ("M1234567801", IdKind.HK_MO_PERMIT),
        ("USA310090030712", IdKind.FOREIGN_PERMANENT),
        ("931840199003071234", IdKind.FOREIGN_PERMANENT),
        ("810000199003071234", IdKind.HMT_RESIDENCE),
        ("12345678", IdKind.TW_PERMIT),
        ("1234567801(B)", IdKind.TW_PERMIT),
    ],
)
def test_detect_id_kind(text: str, kind: IdKind) -> None:
    assert detect_id_kind(text) is kind


def test_explicit_kind_with_another_documents_number_names_that_document() -> None:
    result = check_id_document("H12345678", IdKind.RESIDENT_ID, today=TODAY)
    assert result.reason == "kind_mismatch" and "港澳居民来往内地通行证" in result.hint
    result = check_id_document(resident_id(), "tw_permit", today=TODAY)
    assert result.reason == "kind_mismatch" and "居民身份证" in result.hint
    plain_wrong = check_id_document("12345", IdKind.TW_PERMIT, today=TODAY)
    assert plain_wrong.reason == "format"


def test_checked_repr_never_shows_the_value() -> None:
    number = fake_identity(7).id_number
    assert number not in repr(check_resident_id(number, today=TODAY))
    assert "13800138000" not in repr(check_mobile("13800138000"))


def test_every_hint_is_simplified_chinese_and_every_failure_has_one() -> None:
    failures = [check_resident_id(t, today=TODAY) for t in ("", "1", "310101900307123", "3" * 18)]
    failures += [check_name(t) for t in ("", "张", "张3", "😀", "张Wei", "やまだ", "·张")]
    failures += [check_mobile(t) for t in ("", "abc", "02112345678", "+85291234567", "1380")]
    for result in failures:
        assert not result.ok and result.hint and result.reason and result.value == ""
        assert any("\u4e00" <= c <= "\u9fff" for c in result.hint)
        for traditional in "證號碼請輸錄們誤":
            assert traditional not in result.hint


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("张三", "张三"),
        ("  张 三 ", "张三"),
        ("欧阳娜娜", "欧阳娜娜"),
        ("阿卜杜·热合曼", "阿卜杜·热合曼"),
        ("阿卜杜•热合曼", "阿卜杜·热合曼"),
        ("阿卜杜‧热合曼", "阿卜杜·热合曼"),
        ("阿卜杜・热合曼", "阿卜杜·热合曼"),
        ("阿卜杜 . 热合曼", "阿卜杜·热合曼"),
        ("买买提·艾力·吐尔逊", "买买提·艾力·吐尔逊"),
        ("John  Smith", "John Smith"),
        ("Ｊｏｈｎ Ｓｍｉｔｈ", "John Smith"),
        ("Mary-Jane O’Neil", "Mary-Jane O'Neil"),
        ("José Müller", "José Müller"),
        ("Li", "Li"),
        ("Jean·Paul Sartre", "Jean Paul Sartre"),
        ("𠮷田", "𠮷田"),
        ("A" * 30, "A" * 30),
    ],
)
def test_names_accepted_and_normalised(text: str, value: str) -> None:
    assert check_name(text) == Checked.good(value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("···", "empty"),
        ("-'", "empty"),
        ("!!!", "symbols"),
        ("张", "too_short"),
        ("J", "too_short"),
        ("A" * 31, "too_long"),
        ("张三3", "digits"),
        ("张三😀", "symbols"),
        ("😀😀", "symbols"),
        ("张三!", "symbols"),
        ("J. Smith", "symbols"),
        ("张Wei", "mixed_script"),
        ("Иван Петров", "script"),
        ("やまだ", "script"),
        ("张-三", "symbols"),
        ("·阿卜杜", "dot_position"),
        ("阿卜杜·", "dot_position"),
        ("阿卜杜··热合曼", "dot_position"),
        ("John--Smith", "separators"),
        ("-John", "separators"),
        ("O'", "separators"),
    ],
)
def test_names_rejected_with_a_reason(text: str, reason: str) -> None:
    result = check_name(text)
    assert (result.ok, result.reason, result.value) == (False, reason, "")
    assert result.hint


@given(st.integers(0, 10_000))
def test_generated_chinese_names_are_accepted(seed: int) -> None:
    name = fake_identity(seed).name
    assert check_name(name).value == name


# --------------------------------------------------------------------------- mobiles


@pytest.mark.parametrize(
    "text",
    [
        "13800138000",
        "138 0013 8000",
        "138-0013-8000",
        "+86 138 0013 8000",
        "+8613800138000",
        "008613800138000",
        "0086 138-0013-8000",
        "8613800138000",
        "１３８００１３８０００",
        "(+86) 138 0013 8000",
    ],
)
def test_mobile_accepted_as_11_digits(text: str) -> None:
    assert check_mobile(text) == Checked.good("13800138000")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("abc", "characters"),
        ("138OO138000", "characters"),
        ("1380013800", "length"),
        ("138001380001", "length"),
        ("02112345678", "not_mobile"),
        ("021-6123-4567", "not_mobile"),
        ("4001234567", "not_mobile"),
        ("+85291234567", "not_mainland"),
        ("+1 650 253 0000", "not_mainland"),
        ("12345678901", "invalid"),
        ("10012345678", "invalid"),
        ("+", "characters"),
    ],
)
def test_mobile_rejected_with_a_reason(text: str, reason: str) -> None:
    result = check_mobile(text)
    assert (result.ok, result.reason, result.value) == (False, reason, "")


@given(
    seed=st.integers(0, 10_000),
    prefix=st.sampled_from(["", "+86", "+86 ", "0086", "86", "(+86)"]),
    separator=st.sampled_from(["", " ", "-"]),
    full_width=st.booleans(),
)
def test_generated_mobiles_in_any_spelling(
    seed: int, prefix: str, separator: str, full_width: bool
) -> None:
    phone = fake_identity(seed).phone
    text = prefix + separator.join((phone[:3], phone[3:7], phone[7:]))
    text = to_full_width(text) if full_width else text
    assert check_mobile(text) == Checked.good(phone)


def test_every_mobile_prefix_of_the_fakes_is_a_mobile() -> None:
    for prefix in MOBILE_PREFIXES:
        assert check_mobile(prefix + "00001111").ok, prefix


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("张三丰", "张**"),
        ("欧阳娜娜", "欧阳**"),
        ("司马光", "司马*"),
        ("司马", "司*"),
        ("阿卜杜·热合曼", "阿**·***"),
        ("John Smith", "J*** S****"),
        ("Mary-Jane O'Neil", "M***-J*** O'N***"),
        ("", ""),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def test_mask_id_and_phone_examples() -> None:
    assert mask_id("31010119900307123X") == "310***********123X"
    assert mask_id("USA310090030712") == "USA**********12"
    assert mask_id("H12345678") == "H******78"
    assert mask_id("M1234567801") == "M********01"
    assert mask_id("12345678") == "1*****78"
    assert mask_id("") == ""
    assert mask_phone("13800138000") == "138****8000"
    assert mask_phone("") == ""


_HAN = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)


@given(
    surname=st.sampled_from(SURNAMES),
    given_name=st.text(_HAN, min_size=1, max_size=3),
    second=st.one_of(st.none(), st.text(_HAN, min_size=1, max_size=4)),
)
def test_mask_name_reveals_at_most_the_surname(
    surname: str, given_name: str, second: str | None
) -> None:
    name = surname + given_name + (MIDDLE_DOT + second if second else "")
    masked = mask_name(name)
    assert len(masked) == len(name)
    shown = [c for c in masked if c not in ("*", MIDDLE_DOT)]
    assert len(shown) <= 2 and masked.startswith(surname)
    assert masked.count("*") >= len(name) - 2 - name.count(MIDDLE_DOT)


@given(
    st.lists(
        st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"), min_size=1, max_size=8),
        min_size=1,
        max_size=4,
    )
)
def test_mask_latin_name_shows_only_initials(parts: list[str]) -> None:
    name = " ".join(parts)
    masked = mask_name(name)
    assert len(masked) == len(name)
    assert [w[:1] for w in masked.split(" ")] == [p[:1] for p in parts]
    assert all(set(w[1:]) <= {"*"} for w in masked.split(" "))


@given(
    region=st.sampled_from(REGIONS),
    born=st.dates(date(1900, 1, 1), TODAY),
    seq=st.integers(0, 999),
)
def test_mask_id_never_reveals_the_birth_date(region: str, born: date, seq: int) -> None:
    number = resident_id(region, born, seq)
    masked = mask_id(number)
    assert len(masked) == 18
    assert masked[:3] == number[:3] and masked[-4:] == number[-4:]
    assert masked[3:14] == "*" * 11


@given(st.text(st.sampled_from("0123456789ABHMX"), max_size=25))
def test_mask_id_shows_less_than_half_of_anything(number: str) -> None:
    masked = mask_id(number)
    assert len(masked) == len(number)
    shown = sum(1 for a, b in zip(masked, number, strict=True) if a == b and a != "*")
    assert shown * 2 < max(len(number), 1) or len(number) == 0


@given(st.integers(0, 10_000))
def test_mask_phone_shows_first_3_and_last_4(seed: int) -> None:
    phone = fake_identity(seed).phone
    masked = mask_phone(phone)
    assert masked == phone[:3] + "****" + phone[7:]
