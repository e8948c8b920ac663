"""One-time SMS codes that prove a citizen holds the phone they registered: the pure policy.

No I/O here. The state is three plain dataclasses a later step stores in the database:

* `Challenge` — one per sender (WeChat account): the code in play, as an HMAC, never clear;
* `SendLog` for each phone (keyed by `OneTimeCodes.phone_key`) — sends to that phone from
  any sender, for the 60 s gap and the hourly limit;
* `SendLog` for each sender — sends to any phone, for the daily limit.

`OneTimeCodes.request` and `.verify` take the current state and return the new state with an
`Outcome`; the caller persists what comes back (before sending the SMS, so a crash cannot
turn into unlimited sends). The clock and the random source are injected so that tests are
exact, and windows are rolling (the last 3600 s / 86400 s), not calendar hours or days.

Why the numbers: 6 digits and 5 wrong tries give a guesser 5 in a million per code; 5 codes
an hour per phone bound that to 25 guesses an hour, and the gap and limits keep the bot from
being used to flood someone's phone.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

SENT, TOO_SOON, RATE_LIMITED = "sent", "too_soon", "rate_limited"
OK, WRONG, EXPIRED, LOCKED, MALFORMED = "ok", "wrong", "expired", "locked", "malformed"
HOUR_S, DAY_S = 3600, 86400


@dataclass(frozen=True)
class OtpPolicy:
    """The knobs, with the defaults from the registration issue."""

    digits: int = 6
    ttl_s: int = 300
    max_wrong: int = 5
    resend_gap_s: int = 60
    phone_sends_per_hour: int = 5
    sender_sends_per_day: int = 10


@dataclass(frozen=True)
class Outcome:
    """What happened: `kind` is one of the module constants.

    `wait_s` (too_soon, rate_limited) is how long until a new code may be sent, rounded up;
    `tries_left` (wrong, malformed) is how many wrong codes the challenge still takes.
    """

    kind: str
    wait_s: int = 0
    tries_left: int = 0

    @property
    def ok(self) -> bool:
        return self.kind in (OK, SENT)


@dataclass(frozen=True)
class Challenge:
    """A code in play for one sender and one phone. Holds no clear code and no clear phone."""

    phone_key: str
    nonce: str
    code_mac: str
    issued_at: float
    expires_at: float
    wrong_tries: int = 0
    used: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "phone_key": self.phone_key,
            "nonce": self.nonce,
            "code_mac": self.code_mac,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "wrong_tries": self.wrong_tries,
            "used": self.used,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Challenge:
        return cls(
            phone_key=str(data["phone_key"]),
            nonce=str(data["nonce"]),
            code_mac=str(data["code_mac"]),
            issued_at=float(data["issued_at"]),
            expires_at=float(data["expires_at"]),
            wrong_tries=int(data.get("wrong_tries", 0)),
            used=bool(data.get("used", False)),
        )


@dataclass(frozen=True)
class SendLog:
    """When codes were sent (epoch seconds, oldest first) within the window that matters."""

    sent_at: tuple[float, ...] = ()

    def within(self, now: float, window_s: float) -> SendLog:
        """Only the sends of the last `window_s` seconds: old entries need not be stored."""
        return SendLog(tuple(t for t in self.sent_at if now - t < window_s))

    def to_dict(self) -> dict[str, Any]:
        return {"sent_at": list(self.sent_at)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SendLog:
        return cls(tuple(sorted(float(t) for t in (data or {}).get("sent_at", ()))))


@dataclass(frozen=True)
class SendResult:
    """New state after a send request. `code` is for the SMS text only: never store or log it."""

    outcome: Outcome
    challenge: Challenge | None
    phone_log: SendLog
    sender_log: SendLog
    code: str = field(default="", repr=False)


@dataclass(frozen=True)
class VerifyResult:
    outcome: Outcome
    challenge: Challenge | None


_CODE_DROP = re.compile(r"[\s\-]+")


class OneTimeCodes:
    """Issues and checks codes under an `OtpPolicy`; `key` makes the stored MACs unforgeable.

    `rng` defaults to the operating system's CSPRNG (`secrets.SystemRandom`); pass a seeded
    `random.Random` only in tests.
    """

    def __init__(
        self,
        key: bytes,
        policy: OtpPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if len(key) < 16:
            raise ValueError("the OTP key must be at least 16 bytes")
        self._key = key
        self.policy = policy or OtpPolicy()
        self._clock = clock
        self._rng = rng or secrets.SystemRandom()

    def phone_key(self, phone: str) -> str:
        """A keyed hash of the (normalised, 11-digit) phone: the send-log key, never the phone."""
        return hmac.new(self._key, b"otp-phone/v1|" + phone.encode(), hashlib.sha256).hexdigest()

    def _mac(self, phone_key: str, nonce: str, code: str) -> str:
        message = f"otp-code/v1|{phone_key}|{nonce}|{code}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def request(
        self,
        phone: str,
        *,
        challenge: Challenge | None,
        phone_log: SendLog,
        sender_log: SendLog,
    ) -> SendResult:
        """Issue a new code for `phone` unless a limit says wait; a new code replaces the old.

        When several limits apply, the longest wait is the one reported: it is the real one.
        """
        policy, now = self.policy, self._clock()
        phone_log = phone_log.within(now, HOUR_S)
        sender_log = sender_log.within(now, DAY_S)

        waits: list[tuple[float, str]] = []
        if len(sender_log.sent_at) >= policy.sender_sends_per_day:
            waits.append((sender_log.sent_at[-policy.sender_sends_per_day] + DAY_S, RATE_LIMITED))
        if len(phone_log.sent_at) >= policy.phone_sends_per_hour:
            waits.append((phone_log.sent_at[-policy.phone_sends_per_hour] + HOUR_S, RATE_LIMITED))
        if phone_log.sent_at and now - phone_log.sent_at[-1] < policy.resend_gap_s:
            waits.append((phone_log.sent_at[-1] + policy.resend_gap_s, TOO_SOON))
        if waits:
            until, kind = max(waits)
            outcome = Outcome(kind, wait_s=max(1, math.ceil(until - now)))
            return SendResult(outcome, challenge, phone_log, sender_log)

        code = f"{self._rng.randrange(10**policy.digits):0{policy.digits}d}"
        nonce = f"{self._rng.getrandbits(128):032x}"
        key = self.phone_key(phone)
        fresh = Challenge(
            phone_key=key,
            nonce=nonce,
            code_mac=self._mac(key, nonce, code),
            issued_at=now,
            expires_at=now + policy.ttl_s,
        )
        return SendResult(
            Outcome(SENT),
            fresh,
            SendLog((*phone_log.sent_at, now)),
            SendLog((*sender_log.sent_at, now)),
            code=code,
        )

    def verify(self, challenge: Challenge | None, code: str, *, phone: str) -> VerifyResult:
        """Check `code` for `phone`; a code sent to another phone never confirms this one.

        A used challenge or one for a different phone counts as expired (ask for a new code).
        Input that is not a code at all ("12345", "好的") is `malformed` and costs no try.
        The comparison is constant-time on the MACs.
        """
        policy, now = self.policy, self._clock()
        if challenge is None or challenge.used:
            return VerifyResult(Outcome(EXPIRED), challenge)
        if not hmac.compare_digest(challenge.phone_key, self.phone_key(phone)):
            return VerifyResult(Outcome(EXPIRED), challenge)
        if challenge.wrong_tries >= policy.max_wrong:
            return VerifyResult(Outcome(LOCKED), challenge)
        if now >= challenge.expires_at:
            return VerifyResult(Outcome(EXPIRED), challenge)
        tries_left = policy.max_wrong - challenge.wrong_tries
        entered = _CODE_DROP.sub("", unicodedata.normalize("NFKC", code))
        if not (entered.isascii() and entered.isdigit() and len(entered) == policy.digits):
            return VerifyResult(Outcome(MALFORMED, tries_left=tries_left), challenge)
        expected = challenge.code_mac
        if hmac.compare_digest(self._mac(challenge.phone_key, challenge.nonce, entered), expected):
            return VerifyResult(Outcome(OK), replace(challenge, used=True))
        spent = replace(challenge, wrong_tries=challenge.wrong_tries + 1)
        if tries_left - 1 <= 0:
            return VerifyResult(Outcome(LOCKED), spent)
        return VerifyResult(Outcome(WRONG, tries_left=tries_left - 1), spent)
