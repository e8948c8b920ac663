"""routing.otp: the one-time-code policy, driven by a fake clock and a seeded random source."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.otp import (
    EXPIRED,
    LOCKED,
    MALFORMED,
    OK,
    RATE_LIMITED,
    SENT,
    TOO_SOON,
    WRONG,
    Challenge,
    OneTimeCodes,
    OtpPolicy,
    Outcome,
    SendLog,
    SendResult,
)
from tests.fakes import fake_identity

KEY = b"otp-test-key-0123456789"
PHONE = fake_identity(1).phone
OTHER_PHONE = fake_identity(2).phone
T0 = 1_750_000_000.0


@dataclass
class FakeClock:
    now: float = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Sender:
    """One WeChat sender's state, plus the shared per-phone logs, as the database would hold."""

    otp: OneTimeCodes
    phone_logs: dict[str, SendLog]
    challenge: Challenge | None = None
    log: SendLog = SendLog()

    def request(self, phone: str = PHONE) -> SendResult:
        key = self.otp.phone_key(phone)
        result = self.otp.request(
            phone,
            challenge=self.challenge,
            phone_log=self.phone_logs.get(key, SendLog()),
            sender_log=self.log,
        )
        self.challenge, self.log = result.challenge, result.sender_log
        self.phone_logs[key] = result.phone_log
        return result

    def verify(self, code: str, phone: str = PHONE) -> Outcome:
        result = self.otp.verify(self.challenge, code, phone=phone)
        self.challenge = result.challenge
        return result.outcome


def make(seed: int = 0, policy: OtpPolicy | None = None) -> tuple[FakeClock, Sender]:
    clock = FakeClock()
    otp = OneTimeCodes(KEY, policy, clock=clock, rng=random.Random(seed))
    return clock, Sender(otp, {})


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_send_then_the_right_code_is_ok_once() -> None:
    _, sender = make()
    sent = sender.request()
    assert sent.outcome == Outcome(SENT) and sent.outcome.ok
    assert len(sent.code) == 6 and sent.code.isdigit()
    assert sender.verify(sent.code) == Outcome(OK)
    assert sender.verify(sent.code) == Outcome(EXPIRED), "one-time: a used code is spent"


def test_codes_are_six_digits_with_leading_zeros_and_come_from_the_injected_rng() -> None:
    codes = []
    for seed in range(300):
        _, sender = make(seed)
        codes.append(sender.request().code)
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert any(c.startswith("0") for c in codes)
    assert len(set(codes)) > 290
    assert [make(5)[1].request().code for _ in range(2)] == [codes[5]] * 2


def test_the_code_is_never_kept_in_clear() -> None:
    _, sender = make(3)
    sent = sender.request()
    stored = json.dumps(
        [sent.challenge.to_dict(), sent.phone_log.to_dict(), sent.sender_log.to_dict()]
    )
    assert sent.code not in stored and PHONE not in stored
    assert sent.code not in repr(sent) and sent.code not in repr(sent.challenge)


def test_state_round_trips_through_plain_dicts() -> None:
    clock, sender = make()
    sent = sender.request()
    challenge = Challenge.from_dict(json.loads(json.dumps(sent.challenge.to_dict())))
    assert challenge == sent.challenge
    log = SendLog.from_dict(json.loads(json.dumps(sent.phone_log.to_dict())))
    assert log == sent.phone_log == SendLog((T0,))
    assert SendLog.from_dict(None) == SendLog() == SendLog.from_dict({})
    clock.advance(10)
    assert sender.otp.verify(challenge, sent.code, phone=PHONE).outcome.kind == OK


def test_five_wrong_tries_kill_the_challenge() -> None:
    _, sender = make()
    code = sender.request().code
    for left in (4, 3, 2, 1):
        assert sender.verify(wrong_code(code)) == Outcome(WRONG, tries_left=left)
    assert sender.verify(wrong_code(code)) == Outcome(LOCKED)
    assert sender.verify(code) == Outcome(LOCKED), "even the right code is refused now"
    assert sender.challenge is not None and sender.challenge.wrong_tries == 5


def test_a_wrong_try_then_the_right_code() -> None:
    _, sender = make()
    code = sender.request().code
    assert sender.verify(wrong_code(code)).kind == WRONG
    assert sender.verify(code).kind == OK


def test_expiry_after_five_minutes() -> None:
    clock, sender = make()
    code = sender.request().code
    clock.advance(299.9)
    checkpoint = sender.challenge
    assert sender.otp.verify(checkpoint, code, phone=PHONE).outcome.kind == OK
    clock.advance(0.1)
    assert sender.otp.verify(checkpoint, code, phone=PHONE).outcome == Outcome(EXPIRED)


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "abcdef", "好的", "12 34 5"])
def test_malformed_input_costs_no_try(typed: str) -> None:
    _, sender = make()
    code = sender.request().code
    assert sender.verify(typed) == Outcome(MALFORMED, tries_left=5)
    assert sender.challenge is not None and sender.challenge.wrong_tries == 0
    assert sender.verify(code).kind == OK


def test_code_typed_full_width_or_with_spaces_is_accepted() -> None:
    _, sender = make()
    code = sender.request().code
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in code)
    assert sender.verify(f" {full_width[:3]} {full_width[3:]} ").kind == OK


def test_a_code_sent_to_one_phone_never_confirms_another() -> None:
    _, sender = make()
    code = sender.request(PHONE).code
    assert sender.verify(code, phone=OTHER_PHONE) == Outcome(EXPIRED)
    assert sender.verify(code, phone=PHONE).kind == OK


def test_no_challenge_is_expired() -> None:
    _, sender = make()
    assert sender.verify("123456") == Outcome(EXPIRED)


def test_a_new_code_replaces_the_old_one() -> None:
    clock, sender = make()
    first = sender.request().code
    clock.advance(60)
    second = sender.request().code
    assert first != second
    assert sender.verify(first).kind == WRONG
    assert sender.verify(second).kind == OK


def test_sixty_seconds_between_sends_to_the_same_phone() -> None:
    clock, sender = make()
    sender.request()
    before = sender.challenge
    assert sender.request().outcome == Outcome(TOO_SOON, wait_s=60)
    assert sender.challenge == before, "a refused send leaves the challenge alone"
    clock.advance(59.5)
    assert sender.request().outcome == Outcome(TOO_SOON, wait_s=1)
    clock.advance(0.5)
    assert sender.request().outcome.kind == SENT


def test_the_gap_is_per_phone_across_senders() -> None:
    clock, alice = make()
    bob = Sender(alice.otp, alice.phone_logs)
    alice.request(PHONE)
    assert bob.request(PHONE).outcome == Outcome(TOO_SOON, wait_s=60)
    assert bob.request(OTHER_PHONE).outcome.kind == SENT


def test_five_sends_per_phone_per_rolling_hour() -> None:
    clock, sender = make()
    for _ in range(5):
        assert sender.request().outcome.kind == SENT
        clock.advance(60)
    # Sent at T0, +60, …, +240; now T0+300: the first ages out at T0+3600.
    assert sender.request().outcome == Outcome(RATE_LIMITED, wait_s=3300)
    clock.advance(3299)
    assert sender.request().outcome == Outcome(RATE_LIMITED, wait_s=1)
    clock.advance(1)
    assert sender.request().outcome.kind == SENT


def test_the_phone_limit_holds_across_senders() -> None:
    clock, first = make()
    others = [Sender(first.otp, first.phone_logs) for _ in range(6)]
    for sender in others[:5]:
        assert sender.request().outcome.kind == SENT
        clock.advance(61)
    assert others[5].request().outcome.kind == RATE_LIMITED


def test_ten_sends_per_sender_per_rolling_day() -> None:
    clock, sender = make()
    phones = [fake_identity(seed).phone for seed in range(100, 111)]
    assert len(set(phones)) == 11
    for phone in phones[:10]:
        assert sender.request(phone).outcome.kind == SENT
        clock.advance(600)
    outcome = sender.request(phones[10]).outcome
    assert outcome == Outcome(RATE_LIMITED, wait_s=86400 - 6000)
    clock.advance(86400 - 6000)
    assert sender.request(phones[10]).outcome.kind == SENT


def test_the_longest_wait_is_the_one_reported() -> None:
    clock, sender = make(policy=OtpPolicy(phone_sends_per_hour=1))
    sender.request()
    clock.advance(10)
    assert sender.request().outcome == Outcome(RATE_LIMITED, wait_s=3590)


def test_logs_keep_only_what_the_windows_need() -> None:
    clock, sender = make()
    sender.request()
    clock.advance(3600)
    result = sender.request()
    assert result.phone_log == SendLog((T0 + 3600,))
    assert result.sender_log == SendLog((T0, T0 + 3600))


def test_policy_knobs() -> None:
    clock, sender = make(policy=OtpPolicy(digits=4, ttl_s=10, max_wrong=1, resend_gap_s=5))
    code = sender.request().code
    assert len(code) == 4
    assert sender.verify(wrong_code(code)[-4:]) == Outcome(LOCKED)
    clock.advance(5)
    code = sender.request().code
    clock.advance(10)
    assert sender.verify(code) == Outcome(EXPIRED)


def test_the_key_matters() -> None:
    with pytest.raises(ValueError):
        OneTimeCodes(b"short")
    clock = FakeClock()
    a = OneTimeCodes(KEY, clock=clock, rng=random.Random(1))
    b = OneTimeCodes(KEY + b"!", clock=clock, rng=random.Random(1))
    assert a.phone_key(PHONE) != b.phone_key(PHONE)
    sent = a.request(PHONE, challenge=None, phone_log=SendLog(), sender_log=SendLog())
    forged = Challenge.from_dict({**sent.challenge.to_dict(), "phone_key": b.phone_key(PHONE)})
    assert b.verify(forged, sent.code, phone=PHONE).outcome.kind == WRONG


def test_default_random_source_is_the_system_csprng() -> None:
    otp = OneTimeCodes(KEY, clock=FakeClock())
    codes = {
        otp.request(PHONE, challenge=None, phone_log=SendLog(), sender_log=SendLog()).code
        for _ in range(20)
    }
    assert len(codes) > 15


_ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["send", "send_other", "right", "wrong", "junk"]),
        st.integers(0, 400),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(actions=_ACTIONS, seed=st.integers(0, 1000))
def test_invariants_under_any_sequence(actions: list[tuple[str, int]], seed: int) -> None:
    """Whatever happens: ≤5 sends per phone per hour, ≥60 s apart, ≤10 per sender per day,
    never OK after 5 wrong tries, never OK after expiry, never OK twice for one code."""
    clock, sender = make(seed)
    sends: dict[str, list[float]] = {PHONE: [], OTHER_PHONE: []}
    code, phone, issued, wrong, used = "", PHONE, 0.0, 0, False
    for action, pause in actions:
        clock.advance(pause)
        if action.startswith("send"):
            target = OTHER_PHONE if action == "send_other" else PHONE
            result = sender.request(target)
            if result.outcome.kind == SENT:
                sends[target].append(clock.now)
                code, phone, issued, wrong, used = result.code, target, clock.now, 0, False
            else:
                assert result.outcome.wait_s >= 1
            continue
        if not code:
            continue
        typed = {"right": code, "wrong": wrong_code(code), "junk": "abc"}[action]
        outcome = sender.verify(typed, phone=phone)
        if outcome.kind == OK:
            assert not used and wrong < 5 and clock.now < issued + 300
            used = True
        elif outcome.kind in (WRONG, LOCKED) and action == "wrong":
            wrong += 1
    for times in sends.values():
        assert all(b - a >= 60 for a, b in zip(times, times[1:], strict=False))
        assert all(sum(1 for t in times if 0 <= s - t < 3600) <= 5 for s in times)
    every = sorted(sends[PHONE] + sends[OTHER_PHONE])
    assert all(sum(1 for t in every if 0 <= s - t < 86400) <= 10 for s in every)
