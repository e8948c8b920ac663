"""Text messages to citizens' phones (one-time codes), behind one `SmsGateway` interface.

* `HttpSmsGateway` posts JSON to an SMS provider's HTTP API; every call has a timeout and
  every failure becomes an `SmsDeliveryError`, so the dialogue can say "send failed, try
  again" instead of crashing.
* `LocalSmsOutbox` sends nothing. It keeps the messages in memory (for tests) and appends
  them to a JSON-lines file under var/ (for a developer who wants to read their code), and
  logs loudly that nothing was sent.

Every send names its logical message with an idempotency key (`sms_key`): derived from what
the message is about (the OTP challenge, the mediation case and offer), never random, so a
send retried after a timeout or a crash carries the same key and the gateway keeps one
message. A gateway answering 409 for a key it already has counts as accepted (`duplicate`).

Message texts are templates we own (`TEMPLATES`). Mainland SMS providers only deliver
templates approved in advance, so the HTTP gateway sends the template id and parameters; the
text is rendered here as well, to check the parameters and for the local outbox. A parameter
that looks like an ID document number is refused: an SMS is stored by carriers and shown on
lock screens, and no message of ours needs one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import string
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import aiohttp

from routing.identity import mask_phone, normalise_id_text

logger = logging.getLogger(__name__)

OTP_TEMPLATE = "otp"
MEDIATION_ON_DUTY = "mediation_on_duty"
MEDIATION_BOOKING = "mediation_booking"
MEDIATION_CANCEL = "mediation_cancel"
MEDIATION_REROUTED = "mediation_rerouted"
# Mediation texts carry the case number, district and times, never the report or the reporter:
# the mediator reads those behind the signed link.
TEMPLATES: Mapping[str, str] = {
    OTP_TEMPLATE: "【上海110】您的验证码是{code}，5分钟内有效。请勿告诉他人。",
    MEDIATION_ON_DUTY: "【上海110】人民调解任务{number}（{district}），请于{deadline}前到场。"
    "请先点击链接查看并接单：{link}",
    MEDIATION_BOOKING: "【上海110】人民调解任务{number}（{district}），请于{book_at}起联系报警人"
    "预约调解时间。请点击链接查看并接单：{link}",
    MEDIATION_CANCEL: "【上海110】人民调解任务{number}已由报警人撤销，无需再处理。",
    MEDIATION_REROUTED: "【上海110】人民调解任务{number}已转{route}处理，无需再处理。",
}
DEFAULT_LOCAL_OUTBOX = Path("var") / "local-sms.jsonl"
KEY_CHARS = 32

# Shapes of ID numbers (after normalise_id_text): 15-18 digit runs (身份证, 居住证, 新版永居证,
# old 15-digit 身份证), old 永居证 (3 letters + 12 digits), 港澳 permits (H/M + 8 digits).
_ID_LIKE = re.compile(r"[0-9]{14,17}[0-9X]|[A-Z]{3}[0-9]{12}|(?<![A-Z])[HM][0-9]{8}")


class SmsTemplateError(ValueError):
    """The template is unknown or its parameters are wrong: a bug on our side, not a retry."""


class SmsDeliveryError(RuntimeError):
    """The gateway did not accept the message. `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True)
class SmsReceipt:
    """The gateway's id for an accepted message, for tracing a complaint ("no code came");
    `duplicate` when the gateway already had the key (a resend: nothing new went out)."""

    message_id: str
    gateway: str
    duplicate: bool = False


def sms_key(template_id: str, *about: str) -> str:
    """The idempotency key of one logical message: template `template_id` about `about`
    (ids that do not change between attempts, e.g. an outbox key and an offer id). Hashed, so
    the key tells the gateway nothing and has one length whatever it is derived from."""
    material = "\x1f".join(("alarmbot-sms:v1", template_id, *about))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:KEY_CHARS]


class SmsGateway(Protocol):
    async def send(
        self, phone: str, template_id: str, params: Mapping[str, str], *, key: str
    ) -> SmsReceipt:
        """Send template `template_id` with `params` to the 11-digit mainland `phone`; `key`
        (from `sms_key`) is the same on every attempt of one logical message."""
        ...


def render_sms(
    template_id: str, params: Mapping[str, str], templates: Mapping[str, str] = TEMPLATES
) -> str:
    """The text a phone would show; refuses unknown, missing, extra or ID-like parameters."""
    try:
        template = templates[template_id]
    except KeyError:
        raise SmsTemplateError(f"unknown SMS template {template_id!r}") from None
    wanted = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    if set(params) != wanted:
        raise SmsTemplateError(
            f"template {template_id!r} takes {sorted(wanted)}, got {sorted(params)}"
        )
    for name, value in params.items():
        if _ID_LIKE.search(normalise_id_text(str(value))):
            raise SmsTemplateError(f"parameter {name!r} looks like an ID number; refused")
    return template.format(**{name: str(value) for name, value in params.items()})


class HttpSmsGateway:
    """An SMS provider's HTTP API: `POST {base_url}/messages` with a JSON body.

    Request: `{"phone", "template_id", "params"}`, `Authorization: Bearer <api_key>` and
    `Idempotency-Key: <key>`, so a retried request is not sent twice. Expected answer: 2xx
    with `{"message_id": "..."}`; 409 means the gateway already has the key: accepted before,
    a `duplicate` receipt (with its message_id when readable). Other non-2xx, timeouts,
    connection errors and unreadable answers raise `SmsDeliveryError` (5xx, 429 and timeouts
    are retryable; an unreadable 2xx is not, since the message may already be on its way).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout_s: float = 5.0,
        *,
        templates: Mapping[str, str] = TEMPLATES,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/messages"
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._templates = templates
        self._session = session
        self._own_session = session is None

    async def send(
        self, phone: str, template_id: str, params: Mapping[str, str], *, key: str
    ) -> SmsReceipt:
        render_sms(template_id, params, self._templates)  # refuse before anything leaves
        if not key:
            raise SmsTemplateError("an SMS needs its idempotency key (sms_key)")
        body = {"phone": phone, "template_id": template_id, "params": dict(params)}
        headers = {"Authorization": f"Bearer {self._api_key}", "Idempotency-Key": key}
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                self.url, json=body, headers=headers, timeout=self._timeout
            ) as response:
                status = response.status
                raw = await response.read()
        except asyncio.TimeoutError:
            raise SmsDeliveryError("SMS gateway timed out", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise SmsDeliveryError(
                f"SMS gateway unreachable: {type(exc).__name__}", retryable=True
            ) from None
        if status == 409:  # sent before under this key (a retry after a timeout or crash)
            message_id = _message_id(raw) or f"duplicate-{key[:12]}"
            logger.info(
                "SMS already accepted by gateway: template %s, to %s, id %s",
                template_id,
                mask_phone(phone),
                message_id,
            )
            return SmsReceipt(message_id=message_id, gateway="http", duplicate=True)
        if not 200 <= status < 300:
            retryable = status >= 500 or status == 429
            raise SmsDeliveryError(
                f"SMS gateway answered HTTP {status}", retryable=retryable, status=status
            )
        message_id = _message_id(raw)
        if message_id is None:
            raise SmsDeliveryError(
                "SMS gateway answered 2xx without a readable message_id",
                retryable=False,
                status=status,
            )
        logger.info(
            "SMS accepted by gateway: template %s, to %s, id %s",
            template_id,
            mask_phone(phone),
            message_id,
        )
        return SmsReceipt(message_id=message_id, gateway="http")

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None


def _message_id(raw: bytes) -> str | None:
    """The non-empty `message_id` of a JSON answer, else None."""
    try:
        message_id = json.loads(raw)["message_id"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(message_id, (str, int)) or isinstance(message_id, bool):
        return None
    return str(message_id) or None


@dataclass(frozen=True)
class LocalSms:
    """One message the local outbox pretended to send."""

    phone: str = field(repr=False)
    template_id: str
    params: Mapping[str, str] = field(repr=False)
    text: str = field(repr=False)
    message_id: str
    at: float
    key: str = ""


class LocalSmsOutbox:
    """Development and test stand-in for `SmsGateway`: records, never sends. Like a gateway
    it keeps one message per idempotency key (a resend gets the first one's receipt).

    The file (one JSON object a line) holds the masked phone and the full text, so a
    developer can read their code without the file becoming a list of phone numbers; tests
    use `messages` / `last_to(phone)`, which keep the full phone in memory only.
    """

    def __init__(
        self,
        path: Path | None = DEFAULT_LOCAL_OUTBOX,
        *,
        templates: Mapping[str, str] = TEMPLATES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.messages: list[LocalSms] = []
        self._templates = templates
        self._clock = clock
        self._by_key: dict[str, LocalSms] = {}

    async def send(
        self, phone: str, template_id: str, params: Mapping[str, str], *, key: str
    ) -> SmsReceipt:
        text = render_sms(template_id, params, self._templates)
        if not key:
            raise SmsTemplateError("an SMS needs its idempotency key (sms_key)")
        if key in self._by_key:
            first = self._by_key[key]
            logger.warning("LOCAL SMS resend of %s: kept once", first.message_id)
            return SmsReceipt(message_id=first.message_id, gateway="local", duplicate=True)
        message = LocalSms(
            phone=phone,
            template_id=template_id,
            params=dict(params),
            text=text,
            message_id=f"local-{uuid.uuid4().hex[:12]}",
            at=self._clock(),
            key=key,
        )
        self.messages.append(message)
        self._by_key[key] = message
        if self.path is not None:
            self._append(message)
        logger.warning(
            "LOCAL SMS, not sent: template %s to %s (id %s)%s",
            template_id,
            mask_phone(phone),
            message.message_id,
            f"; text in {self.path}" if self.path is not None else "",
        )
        return SmsReceipt(message_id=message.message_id, gateway="local")

    def _append(self, message: LocalSms) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = {
            "at": message.at,
            "message_id": message.message_id,
            "to": mask_phone(message.phone),
            "template_id": message.template_id,
            "text": message.text,
        }
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")

    def last_to(self, phone: str) -> LocalSms | None:
        """The newest message to `phone`, e.g. to read the code in an end-to-end test."""
        return next((m for m in reversed(self.messages) if m.phone == phone), None)
