"""Generated fake identities with valid checksums: never a real person's data in tests."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from stdnum.cn import ric

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚"
REGIONS = ("310101", "310104", "310105", "310106", "310107", "310110", "310112", "310115")
MOBILE_PREFIXES = ("138", "139", "150", "151", "158", "186", "187", "188", "199")


@dataclass(frozen=True)
class FakeIdentity:
    name: str
    id_number: str
    phone: str


def fake_identity(seed: int) -> FakeIdentity:
    rng = random.Random(seed)
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
    for _ in range(1000):  # region codes are only valid for some birth years: resample
        birth = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 55))
        body = f"{rng.choice(REGIONS)}{birth:%Y%m%d}{rng.randrange(1000):03d}"
        id_number = body + ric.calc_check_digit(body + "0")  # wants the digit slot present
        if ric.is_valid(id_number):
            break
    else:
        raise RuntimeError("no valid fake ID number found")
    phone = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
    return FakeIdentity(name=name, id_number=id_number, phone=phone)
