"""Real-name registration as a service the dialogue calls: check each answer, keep it sealed,
send and check the SMS code, verify the identity, register, and the self-service after.

Every answer comes back as a `Step`: ok with the masked form the dialogue may show (and keep
in a slot), or a specific Chinese hint. Clear values never leave this module and the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from routing.adapters.identity import (
    HttpIdentityVerifier,
    IdentityVerifier,
    LocalFormatOnlyVerifier,
    VerificationStatus,
)
from routing.adapters.sms import (
    OTP_TEMPLATE,
    HttpSmsGateway,
    LocalSmsOutbox,
    SmsGateway,
    sms_key,
)
from routing.identity import (
    ID_KIND_LABELS,
    IdKind,
    check_id_document,
    check_mobile,
    check_name,
    mask_id,
    mask_name,
    mask_phone,
)
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
    SendLog,
)
from store.registrations import Identity, IdentityTaken, RegistrationStore

logger = logging.getLogger(__name__)

ID_KIND_LABELS_FALLBACK = "证件"
SMS_UNAVAILABLE = (
    "验证码短信暂时发不出去，登记现在无法完成，请稍后再试。报警不受影响：直接告诉我发生了什么即可。"
)


@dataclass(frozen=True)
class Step:
    """The outcome of one answer: `shown` is safe to display and to keep in a slot."""

    ok: bool
    shown: str = ""
    hint: str = ""
    code: str = ""  # machine-readable: taken, sms_failed, too_soon, locked ...


class RegistrationService:
    def __init__(
        self,
        store: RegistrationStore,
        codes: OneTimeCodes,
        sms: SmsGateway | None,
        verifier: IdentityVerifier,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self._store = store
        self._codes = codes
        self._sms = sms
        self._verifier = verifier
        self._clock = clock

    # --- the form's answers ---

    async def give_name(self, channel: str, sender_id: str, text: str) -> Step:
        checked = check_name(text)
        if not checked.ok:
            return Step(False, hint=checked.hint, code=checked.reason)
        await self._store.save_draft(channel, sender_id, name=checked.value)
        return Step(True, shown=mask_name(checked.value))

    async def give_id(self, channel: str, sender_id: str, text: str) -> Step:
        checked = check_id_document(text)
        if not checked.ok:
            return Step(False, hint=checked.hint, code=checked.reason)
        if await self._store.id_taken(checked.value, channel, sender_id):
            return Step(
                False,
                hint="这个证件号已在另一个账号登记。一个证件只能登记一个账号，如有疑问请拨打110。",
                code="taken",
            )
        kind = str(checked.kind.value) if checked.kind else "unknown"
        await self._store.save_draft(channel, sender_id, id_kind=kind, id_number=checked.value)
        label = checked.kind.label if checked.kind else ID_KIND_LABELS_FALLBACK
        return Step(True, shown=f"{label} {mask_id(checked.value)}")

    async def give_phone(self, channel: str, sender_id: str, text: str) -> Step:
        checked = check_mobile(text)
        if not checked.ok:
            return Step(False, hint=checked.hint, code=checked.reason)
        await self._store.save_draft(channel, sender_id, phone=checked.value, otp=None)
        return Step(True, shown=mask_phone(checked.value))

    async def send_code(self, channel: str, sender_id: str) -> Step:
        """Issue a code for the draft's phone, keep the send before sending the SMS."""
        draft = await self._store.draft(channel, sender_id)
        if draft is None or not draft.phone:
            return Step(False, hint="请先告诉我手机号。", code="no_phone")
        if self._sms is None:
            return Step(False, hint=SMS_UNAVAILABLE, code="sms_unavailable")
        now = self._clock()
        phone_key = self._codes.phone_key(draft.phone)
        sender_key = "sender:" + self._store.phone_hash(f"{channel}:{sender_id}")
        logs = await self._store.sends_since([phone_key, sender_key], now - timedelta(days=1))
        result = self._codes.request(
            draft.phone,
            challenge=Challenge.from_dict(draft.otp) if draft.otp else None,
            phone_log=SendLog(tuple(logs[phone_key])),
            sender_log=SendLog(tuple(logs[sender_key])),
        )
        outcome = result.outcome
        if outcome.kind in (TOO_SOON, RATE_LIMITED):
            minutes = max(1, round(outcome.wait_s / 60))
            wait = f"{outcome.wait_s}秒" if outcome.wait_s < 120 else f"{minutes}分钟"
            return Step(False, hint=f"发送太频繁，请{wait}后再试。", code=outcome.kind)
        assert outcome.kind == SENT and result.challenge is not None
        await self._store.record_send([phone_key, sender_key], now)
        await self._store.save_draft(channel, sender_id, otp=result.challenge.to_dict())
        try:
            # One code, one logical message: its key comes from the challenge (a resend of
            # this code would carry the same one; a new code is a new message).
            key = sms_key(OTP_TEMPLATE, result.challenge.nonce)
            await self._sms.send(draft.phone, OTP_TEMPLATE, {"code": result.code}, key=key)
        except Exception:  # the gateway's own error types; never the code in a log
            logger.exception("SMS code could not be sent")
            return Step(False, hint="短信暂时发不出去，请稍后再试。", code="sms_failed")
        return Step(True, shown=mask_phone(draft.phone))

    async def check_code(self, channel: str, sender_id: str, text: str) -> Step:
        draft = await self._store.draft(channel, sender_id)
        if draft is None or not draft.phone:
            return Step(False, hint="请先告诉我手机号。", code="no_phone")
        challenge = Challenge.from_dict(draft.otp) if draft.otp else None
        result = self._codes.verify(challenge, text, phone=draft.phone)
        if result.challenge is not None and result.challenge != challenge:
            await self._store.save_draft(channel, sender_id, otp=result.challenge.to_dict())
        kind = result.outcome.kind
        if kind == OK:
            return Step(True, shown="已验证")
        hints = {
            MALFORMED: "请输入短信里的6位数字验证码。",
            WRONG: f"验证码不对，还可以再试{result.outcome.tries_left}次。",
            EXPIRED: "验证码已过期，请点“重新发送”。",
            LOCKED: "错误次数太多，这个验证码已失效，请点“重新发送”。",
        }
        return Step(False, hint=hints.get(kind, "验证码不对。"), code=kind)

    async def summary(self, channel: str, sender_id: str) -> dict[str, str]:
        draft = await self._store.draft(channel, sender_id)
        return _masked(draft) if draft else {}

    async def complete(self, channel: str, sender_id: str) -> Step:
        """Verify with the identity service and register; the draft must be complete."""
        draft = await self._store.draft(channel, sender_id)
        if draft is None or not (draft.name and draft.id_number and draft.phone):
            return Step(False, hint="登记信息不完整，请重新填写。", code="incomplete")
        verification = await self._verifier.verify(draft.name, draft.id_kind or "", draft.id_number)
        if verification.status == VerificationStatus.REJECTED:
            return Step(False, hint="姓名和证件号核验不一致，请检查后重新填写。", code="rejected")
        try:
            await self._store.register(channel, sender_id, draft)
        except IdentityTaken:
            return Step(
                False,
                hint="这个证件号已在另一个账号登记。一个证件只能登记一个账号，如有疑问请拨打110。",
                code="taken",
            )
        return Step(True, shown=verification.status.value)

    async def close(self) -> None:
        """Close the adapters' HTTP sessions (those that have one)."""
        for adapter in (self._sms, self._verifier):
            close = getattr(adapter, "close", None)
            if close is not None:
                await close()

    async def discard(self, channel: str, sender_id: str) -> None:
        await self._store.discard_draft(channel, sender_id)

    # --- self-service ---

    async def profile(self, channel: str, sender_id: str) -> dict[str, str] | None:
        identity = await self._store.identity(channel, sender_id)
        return _masked(identity) if identity else None

    async def apply_new_phone(self, channel: str, sender_id: str) -> Step:
        draft = await self._store.draft(channel, sender_id)
        if draft is None or not draft.phone:
            return Step(False, hint="请先告诉我新手机号。", code="no_phone")
        await self._store.change_phone(channel, sender_id, draft.phone)
        await self._store.discard_draft(channel, sender_id)
        return Step(True, shown=mask_phone(draft.phone))

    async def erase(self, channel: str, sender_id: str) -> bool:
        return await self._store.erase(channel, sender_id)


def _masked(identity: Identity) -> dict[str, str]:
    shown: dict[str, str] = {}
    if identity.name:
        shown["name"] = mask_name(identity.name)
    if identity.id_number:
        try:
            label = ID_KIND_LABELS[IdKind(identity.id_kind)]
        except (ValueError, KeyError):
            label = ID_KIND_LABELS_FALLBACK
        shown["id"] = f"{label} {mask_id(identity.id_number)}"
    if identity.phone:
        shown["phone"] = mask_phone(identity.phone)
    return shown


def build_registration(
    store: RegistrationStore, otp_key: bytes, env: Mapping[str, str], var_dir: Path
) -> RegistrationService:
    """Adapters from the environment: SMS_URL/SMS_API_KEY and IDENTITY_URL/IDENTITY_APP_KEY;
    without them a LOCAL SMS outbox (var/local-sms.jsonl) and a format-only verifier (the bot
    itself passes its LOCAL SMS gateway stand-in as SMS_URL in development).

    In prod without SMS_URL registration says codes cannot be sent, loudly in the log, but
    the service still starts: refusing to start would refuse emergencies too."""
    prod = env.get("ALARMBOT_ENV", "dev") == "prod"
    sms: SmsGateway | None
    if env.get("SMS_URL"):
        sms = HttpSmsGateway(env["SMS_URL"], env.get("SMS_API_KEY", ""))
    elif prod:
        logger.error("SMS_URL is not set: registration cannot send codes until it is")
        sms = None
    else:
        sms = LocalSmsOutbox(var_dir / "local-sms.jsonl")
    if env.get("IDENTITY_URL"):
        verifier: IdentityVerifier = HttpIdentityVerifier(
            env["IDENTITY_URL"], env.get("IDENTITY_APP_KEY", "")
        )
    else:
        if prod:
            logger.warning("IDENTITY_URL is not set: identities are checked for format only")
        verifier = LocalFormatOnlyVerifier()
    return RegistrationService(store, OneTimeCodes(otp_key), sms, verifier)
