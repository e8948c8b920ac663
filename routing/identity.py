"""Checking what a citizen types during real-name registration: ID documents, name, mobile.

Pure functions, no I/O. Every check returns a `Checked`: on success the normalised value (what
gets stored and hashed, so that "１１０…ｘ" and "110…X" are the same person), on failure an
empty value, a machine-readable `reason` (the dialogue counts failures by it) and a polite
Simplified-Chinese `hint` that tells the citizen what to fix. Nothing half-valid comes out.

The masking helpers at the end decide what may be shown on a screen.

Document formats and sources (all numbers in tests are generated, never real):

* 居民身份证 — GB 11643-1999: 6-digit region code, birth date YYYYMMDD, 3-digit sequence,
  ISO 7064 MOD 11-2 check character (0-9 or X). Checksum and region table from
  `stdnum.cn.ric` (python-stdnum). The 15-digit first-generation numbers are no longer valid
  documents; they get their own hint.
* 外国人永久居留身份证 — before 1 Dec 2023: 15 characters, 3 Latin letters (nationality,
  ISO 3166-1 alpha-3) + 4 digits (issuing province + city) + birth date YYMMDD + 2 digits.
  Since 1 Dec 2023 (National Immigration Administration, "新版外国人永久居留身份证机读信息
  规则(2023版)"): 18 characters, "9" + 2-digit issuing province + 3-digit numeric nationality
  code + birth date YYYYMMDD + 3-digit sequence + MOD 11-2 check character, like GB 11643.
  Published descriptions disagree on whether the 15th character of the old format is a check
  digit, so the old format is checked for shape, province and birth date only.
* 港澳居民来往内地通行证 — H (Hong Kong) or M (Macao) + 8-digit lifelong number, optionally
  followed by a 2-digit issue count (10 digits).
* 台湾居民来往大陆通行证 — 8-digit lifelong number since 2008-09-25 ("一人一号、终身不变");
  older numbers are those 8 digits + 2-digit issue count, sometimes with the issuing office
  in brackets ("0561682001(D)"); the bracket is dropped.
* 港澳台居民居住证 (since 2018) — GB 11643 layout with region 810000 (Hong Kong), 820000
  (Macao) or 830000 (Taiwan) and the MOD 11-2 check character.

Region codes: `stdnum.cn.ric.validate` also rejects a region code that did not exist in the
birth year. That is wrong for real people: the code is the one in force when the number was
first issued, often years after birth (someone born in 1985 in today's 浦东新区, created
1992, can hold 310115 1985…). So a region code is accepted when it appears in stdnum's table
for any period, and only an unknown code is refused.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from functools import lru_cache
from zoneinfo import ZoneInfo

import phonenumbers
from stdnum import numdb
from stdnum.cn import ric

SHANGHAI = ZoneInfo("Asia/Shanghai")
EARLIEST_BIRTH_YEAR = 1900
NAME_MIN_CHARS, NAME_MAX_CHARS = 2, 30


class IdKind(str, Enum):
    """ID documents accepted for registration; the value is what slots and the database hold."""

    RESIDENT_ID = "resident_id"
    FOREIGN_PERMANENT = "foreign_permanent"
    HK_MO_PERMIT = "hk_mo_permit"
    TW_PERMIT = "tw_permit"
    HMT_RESIDENCE = "hmt_residence"

    @property
    def label(self) -> str:
        """The document's name as a citizen knows it."""
        return ID_KIND_LABELS[self]


ID_KIND_LABELS = {
    IdKind.RESIDENT_ID: "居民身份证",
    IdKind.FOREIGN_PERMANENT: "外国人永久居留身份证",
    IdKind.HK_MO_PERMIT: "港澳居民来往内地通行证",
    IdKind.TW_PERMIT: "台湾居民来往大陆通行证",
    IdKind.HMT_RESIDENCE: "港澳台居民居住证",
}


@dataclass(frozen=True)
class Checked:
    """Outcome of one check. `value` is kept out of `repr` so a stray log line leaks nothing."""

    ok: bool
    value: str = field(default="", repr=False)
    hint: str = ""
    reason: str = ""
    kind: IdKind | None = None

    @classmethod
    def good(cls, value: str, kind: IdKind | None = None) -> Checked:
        return cls(ok=True, value=value, kind=kind)

    @classmethod
    def bad(cls, reason: str, hint: str, kind: IdKind | None = None) -> Checked:
        return cls(ok=False, reason=reason, hint=hint, kind=kind)


def shanghai_today() -> date:
    """Today's date in Asia/Shanghai: birth dates are judged by the citizen's calendar."""
    return datetime.now(SHANGHAI).date()


# --------------------------------------------------------------------------- ID documents

_ID_DROP = re.compile(r"[\s\-\u2010-\u2015\u2212\u200b-\u200d\u2060\ufeff]+")


def normalise_id_text(text: str) -> str:
    """Full-width → half-width, drop spaces and hyphens, upper-case (x → X, h → H).

    People copy numbers from photos and chat apps: "３１０１ ０１－…ｘ" is the same number.
    """
    folded = unicodedata.normalize("NFKC", text)
    return _ID_DROP.sub("", folded).upper()


def mod11_2_check(body17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for 17 digits (GB 11643), via stdnum."""
    return ric.calc_check_digit(body17 + "0")


@lru_cache(maxsize=4096)
def _region_info(code6: str) -> dict[str, str]:
    return {k: v for _, props in numdb.get("cn/loc").info(code6) for k, v in props.items()}


def region_known(code6: str) -> bool:
    """A 6-digit region code that exists in the GB/T 2260 table for any period."""
    return len(code6) == 6 and code6.isdigit() and "county" in _region_info(code6)


def province_known(code2: str) -> bool:
    return len(code2) == 2 and code2.isdigit() and "province" in _region_info(code2 + "0000")


def _parse_date(yyyymmdd: str) -> date | None:
    try:
        return date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return None


def _birth_date_problem(yyyymmdd: str, today: date, kind: IdKind) -> Checked | None:
    born = _parse_date(yyyymmdd)
    if born is None or born.year < EARLIEST_BIRTH_YEAR:
        return Checked.bad(
            "birth_date",
            "号码中的出生日期（第7至14位）不是一个有效的日期，请核对这几位后重新输入。",
            kind,
        )
    if born > today:
        return Checked.bad(
            "future_birth_date",
            "号码中的出生日期（第7至14位）晚于今天，请核对这几位后重新输入。",
            kind,
        )
    return None


def _checksum_problem(number: str, kind: IdKind) -> Checked | None:
    if number[-1] != mod11_2_check(number[:17]):
        return Checked.bad(
            "checksum",
            "校验位不对，请核对最后一位；如果最后一位没错，可能是前面某一位输错了。",
            kind,
        )
    return None


def _gb11643_shape_problem(number: str, kind: IdKind, label: str) -> Checked | None:
    if len(number) != 18:
        return Checked.bad(
            "length",
            f"{label}号码应为18位，您输入了{len(number)}位，请核对后重新输入。",
            kind,
        )
    if not (number[:17].isdigit() and number[:17].isascii() and number[17] in "0123456789X"):
        return Checked.bad(
            "characters",
            f"{label}号码前17位都是数字，最后一位是数字或字母X，请核对后重新输入。",
            kind,
        )
    return None


def check_resident_id(text: str, *, today: date | None = None) -> Checked:
    """Mainland 居民身份证 (GB 11643-1999).

    Order of checks: length, characters, birth date, region, checksum. A typo in the date
    or region also breaks the checksum; naming the part that is visibly wrong helps more
    than "check the last digit".
    """
    kind = IdKind.RESIDENT_ID
    number = normalise_id_text(text)
    today = today or shanghai_today()
    if not number:
        return Checked.bad("empty", "请输入18位居民身份证号码。", kind)
    if len(number) == 15 and number.isdigit():
        return Checked.bad(
            "old_15_digit",
            "这是旧的15位身份证号码，已停止使用。请输入您现在身份证上的18位号码"
            "（在身份证人像面最下方）。",
            kind,
        )
    problem = _gb11643_shape_problem(number, kind, "身份证")
    if problem:
        return problem
    if number[:2] in ("81", "82", "83") or number[0] == "9":
        other = detect_id_kind(number)
        return Checked.bad(
            "kind_mismatch",
            f"这看起来是{other.label}的号码，不是居民身份证。请确认证件类型后重新输入。",
            kind,
        )
    problem = _birth_date_problem(number[6:14], today, kind)
    if problem:
        return problem
    if not region_known(number[:6]):
        return Checked.bad(
            "region",
            "号码前6位的地区代码不存在，请核对前6位后重新输入。",
            kind,
        )
    return _checksum_problem(number, kind) or Checked.good(number, kind)


def check_hmt_residence_permit(text: str, *, today: date | None = None) -> Checked:
    """港澳台居民居住证: GB 11643 layout with region 810000, 820000 or 830000."""
    kind = IdKind.HMT_RESIDENCE
    number = normalise_id_text(text)
    today = today or shanghai_today()
    if not number:
        return Checked.bad("empty", "请输入18位港澳台居民居住证号码。", kind)
    problem = _gb11643_shape_problem(number, kind, "居住证")
    if problem:
        return problem
    if number[:6] not in ("810000", "820000", "830000"):
        return Checked.bad(
            "region",
            "港澳台居民居住证号码以810000（香港）、820000（澳门）或830000（台湾）开头，"
            "请核对前6位。",
            kind,
        )
    problem = _birth_date_problem(number[6:14], today, kind)
    if problem:
        return problem
    return _checksum_problem(number, kind) or Checked.good(number, kind)


_FOREIGN_OLD = re.compile(r"[A-Z]{3}[0-9]{12}")


def check_foreign_permanent_id(text: str, *, today: date | None = None) -> Checked:
    """外国人永久居留身份证: the 18-digit 2023 format or the older 15-character one."""
    kind = IdKind.FOREIGN_PERMANENT
    number = normalise_id_text(text)
    today = today or shanghai_today()
    shape_hint = (
        "外国人永久居留身份证号码是18位（以9开头，最后一位是数字或X），"
        "或旧版的15位（3个字母加12位数字），请按证件核对后重新输入。"
    )
    if not number:
        return Checked.bad("empty", shape_hint, kind)
    if len(number) == 15:
        if not _FOREIGN_OLD.fullmatch(number):
            return Checked.bad("characters", shape_hint, kind)
        if not province_known(number[3:5]):
            return Checked.bad("region", "号码第4、5位的受理地代码不存在，请核对后重新输入。", kind)
        yymmdd = number[7:13]
        century = "20" if (_parse_date("20" + yymmdd) or date.max) <= today else "19"
        born = _parse_date(century + yymmdd)
        if born is None:
            return Checked.bad(
                "birth_date",
                "号码中的出生日期（第8至13位）不是一个有效的日期，请核对后重新输入。",
                kind,
            )
        return Checked.good(number, kind)
    if len(number) != 18:
        return Checked.bad("length", shape_hint, kind)
    if not (number[:17].isdigit() and number[:17].isascii() and number[17] in "0123456789X"):
        return Checked.bad("characters", shape_hint, kind)
    if number[0] != "9":
        return Checked.bad(
            "format",
            "18位外国人永久居留身份证号码以9开头，请核对第一位。"
            "如果您持居民身份证，请选择居民身份证。",
            kind,
        )
    if not province_known(number[1:3]):
        return Checked.bad("region", "号码第2、3位的受理地代码不存在，请核对后重新输入。", kind)
    problem = _birth_date_problem(number[6:14], today, kind)
    if problem:
        return problem
    return _checksum_problem(number, kind) or Checked.good(number, kind)


_HK_MO = re.compile(r"[HM][0-9]{8}(?:[0-9]{2})?")


def check_hk_mo_permit(text: str) -> Checked:
    """港澳居民来往内地通行证 (回乡证): H or M + 8 digits, or + 10 with the issue count."""
    kind = IdKind.HK_MO_PERMIT
    number = normalise_id_text(text)
    if _HK_MO.fullmatch(number):
        return Checked.good(number, kind)
    return Checked.bad(
        "format" if number else "empty",
        "港澳居民来往内地通行证号码以H（香港）或M（澳门）开头，后面是8位或10位数字，"
        "请按证件核对后重新输入。",
        kind,
    )


_TW = re.compile(r"[0-9]{8}|([0-9]{10})(?:\([A-Z0-9]\))?")


def check_tw_permit(text: str) -> Checked:
    """台湾居民来往大陆通行证 (台胞证): 8 digits, or the older 10 (bracketed office dropped)."""
    kind = IdKind.TW_PERMIT
    number = normalise_id_text(text)
    match = _TW.fullmatch(number)
    if match:
        return Checked.good(match.group(1) or number, kind)
    return Checked.bad(
        "format" if number else "empty",
        "台湾居民来往大陆通行证号码是8位数字（旧证为10位数字），请按证件核对后重新输入。",
        kind,
    )


def detect_id_kind(text: str) -> IdKind:
    """Best guess of the document from the number's shape; unclear shapes count as 身份证."""
    number = normalise_id_text(text)
    if re.fullmatch(r"[HM][0-9].*", number):
        return IdKind.HK_MO_PERMIT
    if re.fullmatch(r"[A-Z]{3}[0-9].*", number) or (number.startswith("9") and len(number) == 18):
        return IdKind.FOREIGN_PERMANENT
    if len(number) == 18 and number[:6] in ("810000", "820000", "830000"):
        return IdKind.HMT_RESIDENCE
    if _TW.fullmatch(number):
        return IdKind.TW_PERMIT
    return IdKind.RESIDENT_ID


def check_id_document(
    text: str, kind: IdKind | str | None = None, *, today: date | None = None
) -> Checked:
    """Check a number as `kind`, or as the kind its shape suggests when `kind` is None.

    With an explicit kind, a number that fails but is valid as another document gets a hint
    naming that document, so a wrong choice in the menu is easy to fix.
    """
    today = today or shanghai_today()
    wanted = IdKind(kind) if kind is not None else detect_id_kind(text)
    result = _CHECKERS[wanted](text, today)
    if result.ok or kind is None or result.reason == "kind_mismatch":
        return result
    other = detect_id_kind(text)
    if other is not wanted and _CHECKERS[other](text, today).ok:
        return Checked.bad(
            "kind_mismatch",
            f"这看起来是{other.label}的号码，不是{wanted.label}。请确认证件类型后重新输入。",
            wanted,
        )
    return result


_CHECKERS = {
    IdKind.RESIDENT_ID: lambda text, today: check_resident_id(text, today=today),
    IdKind.FOREIGN_PERMANENT: lambda text, today: check_foreign_permanent_id(text, today=today),
    IdKind.HK_MO_PERMIT: lambda text, today: check_hk_mo_permit(text),
    IdKind.TW_PERMIT: lambda text, today: check_tw_permit(text),
    IdKind.HMT_RESIDENCE: lambda text, today: check_hmt_residence_permit(text, today=today),
}


# --------------------------------------------------------------------------- names

MIDDLE_DOT = "·"
# Dots people type between the parts of a minority or transliterated name (阿卜杜·热合曼).
_DOT_VARIANTS = "·•‧・･∙⋅"
_APOSTROPHES = "'’‘ʼ´`＇"
_HYPHENS = "-‐‑–－"
_NAME_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff]")
_HAN_RANGES = (
    (0x3400, 0x4DBF),  # extension A
    (0x4E00, 0x9FFF),  # unified ideographs
    (0x20000, 0x323AF),  # extensions B-I: rare characters do occur in names
    (0x3007, 0x3007),  # 〇
)


def _is_han(char: str) -> bool:
    code = ord(char)
    return any(first <= code <= last for first, last in _HAN_RANGES)


def _is_latin_letter(char: str) -> bool:
    return char.isalpha() and unicodedata.name(char, "").startswith("LATIN")


def _tidy_name(text: str) -> str:
    name = unicodedata.normalize("NFKC", _NAME_ZERO_WIDTH.sub("", text))
    name = re.sub(f"[{_DOT_VARIANTS}]", MIDDLE_DOT, name)
    name = re.sub(f"[{_APOSTROPHES}]", "'", name)
    name = re.sub(f"[{_HYPHENS}]", "-", name)
    name = " ".join(name.split())
    # A full stop between two Han characters is a middle dot typed on a plain keyboard.
    return re.sub(r"(?<=[\u3400-\u9fff])\s*\.\s*(?=[\u3400-\u9fff])", MIDDLE_DOT, name)


def check_name(text: str) -> Checked:
    """A real name as on the ID document: Chinese (with · for minority names) or Latin.

    Chinese names lose inner spaces ("张 三" → "张三"); Latin names keep single spaces,
    hyphens and apostrophes between letters ("Mary-Jane O'Neil"); a middle dot in a Latin
    name becomes a space. Latin letter case is kept as typed.
    """
    name = _tidy_name(text)
    if any(c.isdigit() for c in name):
        return Checked.bad("digits", "姓名里不能有数字，请输入您证件上的姓名。")
    has_han = any(_is_han(c) for c in name)
    has_latin = any(_is_latin_letter(c) for c in name)
    letters = [c for c in name if _is_han(c) or c.isalpha()]
    foreign_script = [c for c in letters if not (_is_han(c) or _is_latin_letter(c))]
    allowed_marks = f" {MIDDLE_DOT}-'"
    symbols = [c for c in name if not (c in allowed_marks or _is_han(c) or c.isalpha())]
    if symbols:
        return Checked.bad(
            "symbols",
            "姓名里不能有表情或特殊符号。少数民族姓名中间的点请用“·”，"
            "外文姓名只能用字母、空格、连字符“-”和撇号“'”。",
        )
    if not letters:
        return Checked.bad("empty", "请输入您证件上的真实姓名，例如：张三。")
    if foreign_script:
        return Checked.bad(
            "script",
            "请用汉字填写中文姓名；外国人请按证件上的拉丁字母填写姓名。",
        )
    if has_han and has_latin:
        return Checked.bad(
            "mixed_script",
            "姓名请只用汉字，或只用拉丁字母（外国人按证件上的写法），不要混在一起。",
        )
    if has_han:
        name = name.replace(" ", "")
        if "-" in name or "'" in name:
            return Checked.bad("symbols", "中文姓名里不能有“-”或“'”。少数民族姓名中间的点请用“·”。")
        parts = name.split(MIDDLE_DOT)
        if any(not part for part in parts):
            return Checked.bad(
                "dot_position",
                "间隔号“·”只能写在姓名中间，不能在开头、结尾或连着写，例如：阿卜杜·热合曼。",
            )
    else:
        name = name.replace(MIDDLE_DOT, " ")
        name = " ".join(name.split())
        if not re.fullmatch(r"[^\s\-']+(?:[\s\-'][^\s\-']+)*", name):
            return Checked.bad(
                "separators",
                "外文姓名的空格、连字符“-”和撇号“'”只能写在字母之间，且不能连着写。",
            )
    if len(name) < NAME_MIN_CHARS:
        return Checked.bad("too_short", "姓名至少2个字，请填写证件上的完整姓名（姓和名）。")
    if len(name) > NAME_MAX_CHARS:
        return Checked.bad("too_long", f"姓名最多{NAME_MAX_CHARS}个字符，请核对后重新输入。")
    return Checked.good(name)


# --------------------------------------------------------------------------- mobile phones

_PHONE_DROP = re.compile(r"[\s\-\u2010-\u2015().]+")


def check_mobile(text: str) -> Checked:
    """A mainland China mobile number that can receive the SMS code, as 11 national digits."""
    raw = _PHONE_DROP.sub("", unicodedata.normalize("NFKC", text))
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    if not raw:
        return Checked.bad("empty", "请输入您的11位手机号码。")
    digits = raw.removeprefix("+")
    if not digits.isdigit() or not digits.isascii():
        return Checked.bad(
            "characters", "手机号只能包含数字，请输入11位手机号码，例如：13800138000。"
        )
    try:
        number = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return Checked.bad("invalid", "手机号应为11位数字、以1开头，请核对后重新输入。")
    national = str(number.national_number)
    if number.country_code != 86:
        return Checked.bad(
            "not_mainland",
            "目前只能向中国大陆手机号（11位，以1开头）发送验证码，请换一个大陆手机号。",
        )
    if len(national) != 11 or not national.startswith("1"):
        if len(national) != 11 and national.startswith("1"):
            return Checked.bad(
                "length", f"手机号应为11位，您输入了{len(national)}位，请核对后重新输入。"
            )
        return Checked.bad(
            "not_mobile",
            "这看起来不是手机号码（可能是座机）。请输入能接收短信的11位手机号码。",
        )
    kind = phonenumbers.number_type(number)
    if not phonenumbers.is_valid_number(number) or kind not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        return Checked.bad("invalid", "这个手机号的号段不存在，请核对前3位后重新输入。")
    return Checked.good(national)


# A mainland mobile number written in free text (a report, a message), full-width digits too.
MOBILE_IN_TEXT = re.compile(
    r"(?<![0-9\uff10-\uff19])[1\uff11][3-9\uff13-\uff19][0-9\uff10-\uff19]{9}"
    r"(?![0-9\uff10-\uff19])"
)


def mobiles_in_text(text: str) -> list[str]:
    """The valid mainland mobile numbers in `text`, as 11 ASCII digits, in order."""
    found = (unicodedata.normalize("NFKC", m) for m in MOBILE_IN_TEXT.findall(text))
    return [number for number in found if check_mobile(number).ok]


def mask_mobiles_in_text(text: str) -> str:
    """`text` with every mobile-looking number in it masked (138****5678)."""
    return MOBILE_IN_TEXT.sub(
        lambda match: mask_phone(unicodedata.normalize("NFKC", match.group())), text
    )


# --------------------------------------------------------------------------- masking

# Common two-character surnames. Kept short on purpose: a wrong entry (东方 for 东 + 方…)
# would reveal a character of the given name.
_COMPOUND_TEXT = (
    "欧阳司马上官诸葛皇甫尉迟公孙慕容长孙宇文司徒"
    "夏侯轩辕令狐端木南宫独孤申屠澹台宗政濮阳淳于单于钟离闻人赫连呼延万俟拓跋左丘"
)
_COMPOUND_SURNAMES = frozenset(_COMPOUND_TEXT[i : i + 2] for i in range(0, len(_COMPOUND_TEXT), 2))


def mask_name(name: str) -> str:
    """Surname only, the rest as *: 张*, 欧阳**, 阿**·***; Latin "John Smith" → "J*** S****".

    Chinese: the (compound) surname stays, every other character is starred; the middle dot
    stays so a minority name is recognisable. Latin: the initial of each part stays and
    separators stay. Lengths are visible, as on every Chinese masked-name screen; the person
    recognises their own name, a bystander learns a surname or initials.
    """
    if not name:
        return ""
    if any(_is_han(c) for c in name):
        keep = 2 if len(name) >= 3 and name[:2] in _COMPOUND_SURNAMES else 1
        return name[:keep] + "".join(c if c == MIDDLE_DOT else "*" for c in name[keep:])
    out, at_start = [], True
    for char in name:
        if char in " -'":
            out.append(char)
            at_start = True
        else:
            out.append(char if at_start else "*")
            at_start = False
    return "".join(out)


def mask_id(number: str) -> str:
    """Enough to recognise the document, never the birth date.

    18 characters (身份证, 居住证, new 永居证): first 3 and last 4 (310***********123X);
    15 (old 永居证, birth date in positions 8-13): first 3 and last 2; 8-11 (travel permits):
    first 1 and last 2 (H******78); anything else: only the last 2.
    """
    size = len(number)
    if size >= 18:
        head, tail = 3, 4
    elif size >= 15:
        head, tail = 3, 2
    elif size >= 8:
        head, tail = 1, 2
    else:
        head, tail = 0, min(2, size // 3)
    return number[:head] + "*" * (size - head - tail) + number[size - tail :]


def mask_phone(phone: str) -> str:
    """138****5678 for an 11-digit number; otherwise only the last 2 digits are shown."""
    if len(phone) == 11:
        return phone[:3] + "****" + phone[7:]
    tail = min(2, len(phone) // 3)
    return "*" * (len(phone) - tail) + phone[len(phone) - tail :]
