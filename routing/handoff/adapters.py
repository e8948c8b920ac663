"""Delivering a `HandoffMessage` to the system that takes it: one `HandoffAdapter` interface,
HTTP implementations for the 110 CAD and the 12345 work-order system.

Both POST JSON with `Authorization: Bearer <token>` and `Idempotency-Key: <outbox key>`; the
key is the same on every retry of the same row, so a receiver that keeps keys sees one
logical message. How answers are read:

* 2xx with a JSON object → delivered; `reference` (or `id`) is kept as the external
  reference. 204, or 2xx with an empty body, is delivered without one.
* 409 → the receiver already has this key: delivered (idempotent), reference if readable.
* 408, 429, 5xx, timeouts, connection errors, a 2xx that is not JSON → retryable (safe: the
  key deduplicates). `Retry-After` in seconds is passed on to the relay.
* any other 4xx, or a redirect → not retryable: our request or our configuration is wrong,
  and trying again will not change the answer.

Error texts are ours (status codes and exception type names), never the receiver's body:
they go to the outbox's `last_error` and to logs, which must not carry personal data.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import aiohttp

from routing.handoff.messages import HandoffMessage

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_ANSWER_BYTES = 64 * 1024
EIDO_LIKE_VERSION = "alarmbot-eido-0.1"


class HandoffError(Exception):
    """The receiver did not take the message; `retryable` says whether trying again may help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Delivery:
    """The receiver took the message; `duplicate` when it already had the key (409)."""

    external_ref: str | None
    status_code: int | None = None
    duplicate: bool = False


class HandoffAdapter(Protocol):
    async def deliver(self, message: HandoffMessage) -> Delivery:
        """Deliver `message` or raise `HandoffError`; must give up within its own timeout."""
        ...


def _retry_after(value: str | None) -> float | None:
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:  # an HTTP date: rare, and our backoff is a fine answer to it
        return None


def _reference(raw: bytes) -> str | None:
    """The receiver's id for what we sent, or None; raises ValueError for an unreadable body."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    for name in ("reference", "id"):
        value = data.get(name)
        if isinstance(value, (str, int)) and str(value):
            return str(value)[:64]
    return None


class HttpJsonAdapter:
    """POSTs the JSON body `_body(message)` to `url`; subclasses say what the body is."""

    receiver = "receiver"

    def __init__(
        self,
        url: str,
        token: str = "",
        timeout_s: float = 10.0,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._own_session = session is None

    def _body(self, message: HandoffMessage) -> dict[str, Any]:
        raise NotImplementedError

    async def deliver(self, message: HandoffMessage) -> Delivery:
        body = self._body(message)
        headers = {"Idempotency-Key": message.idempotency_key}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                self.url,
                data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                headers={**headers, "Content-Type": "application/json; charset=utf-8"},
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
                raw = await response.content.read(MAX_ANSWER_BYTES)
        except asyncio.TimeoutError:
            raise HandoffError(
                f"{self.receiver} timed out after {self.timeout_s:g} s", retryable=True
            ) from None
        except aiohttp.ClientError as exc:
            raise HandoffError(
                f"{self.receiver} unreachable: {type(exc).__name__}", retryable=True
            ) from None
        return self._read(status, raw, retry_after)

    def _read(self, status: int, raw: bytes, retry_after: float | None) -> Delivery:
        if status == 409:
            try:
                reference = _reference(raw)
            except ValueError:
                reference = None
            return Delivery(external_ref=reference, status_code=status, duplicate=True)
        if 200 <= status < 300:
            if status == 204 or not raw.strip():
                return Delivery(external_ref=None, status_code=status)
            try:
                return Delivery(external_ref=_reference(raw), status_code=status)
            except ValueError:
                raise HandoffError(
                    f"{self.receiver} answered HTTP {status} with an unreadable body",
                    retryable=True,
                    status_code=status,
                ) from None
        retryable = status >= 500 or status in (408, 429)
        raise HandoffError(
            f"{self.receiver} answered HTTP {status}",
            retryable=retryable,
            status_code=status,
            retry_after_s=retry_after if retryable else None,
        )

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None


# --- 110: computer-aided dispatch ----------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(SHANGHAI).isoformat(timespec="seconds")


def eido_body(message: HandoffMessage) -> dict[str, Any]:
    """The CAD body, modelled on NENA EIDO (NENA-STA-024); see `HttpCadAdapter`."""
    reporter = message.reporter
    location: dict[str, Any] = {
        "locationReference": "loc-1",
        "civicAddressText": message.location.text,
        "district": message.location.district,
    }
    if message.location.has_coordinates:
        location["geo"] = {
            "latitude": message.location.latitude,
            "longitude": message.location.longitude,
            "coordinateReferenceSystem": "WGS84",
        }
    persons: list[dict[str, Any]] = [
        {
            "personReference": "reporter",
            "role": "Caller",
            "nameMasked": reporter.name_masked,
            "phoneMasked": reporter.phone_masked,
            "identityVerified": reporter.verified,
            "callBackAllowed": reporter.callback,
            "textOnly": reporter.callback is False,
            "safe": reporter.safe,
        }
    ]
    if message.suspects:
        persons.append(
            {"personReference": "suspect-1", "role": "Suspect", "descriptionText": message.suspects}
        )
    if message.other_party:
        persons.append(
            {
                "personReference": "party-1",
                "role": "OtherParty",
                "descriptionText": message.other_party,
            }
        )
    vehicles = [
        {
            "vehicleReference": f"veh-{index}",
            "licensePlateText": list(vehicle.plates),
            "descriptionText": vehicle.text,
        }
        for index, vehicle in enumerate(message.vehicles, 1)
    ]
    notes = [{"noteType": "TriageReason", "noteText": reason} for reason in message.reasons]
    if message.missing:
        notes.append({"noteType": "NotGiven", "noteText": "、".join(message.missing)})
    return {
        "eidoVersion": EIDO_LIKE_VERSION,
        "eidoMessageIdentifier": message.idempotency_key,
        "eidoMessageKind": message.kind,
        "lastUpdateTimeStamp": _iso(message.updated_at),
        "incidentComponent": {
            "incidentTrackingIdentifier": message.number,
            "incidentTypeCommonRegistryText": message.category,
            "incidentTypeText": message.category_label,
            "incidentUrgencyText": message.urgency,
            "incidentStatusText": "Cancelled" if message.kind == "cancel" else "Received",
            "incidentCreationTimeStamp": _iso(message.created_at),
            "incidentSubmittedTimeStamp": _iso(message.submitted_at),
            "emergencyFastPath": message.emergency,
            "dangerToLifeNow": message.call_110_now,
            "violenceOrThreats": message.aggression,
            "ongoing": message.ongoing,
            "occurredText": message.time_text,
            "occurredTimeStamp": message.time_iso,
            "summaryText": message.description,
            "completeness": round(message.completeness, 2),
        },
        "locationComponent": [location],
        "personComponent": persons,
        "vehicleComponent": vehicles,
        "weaponsComponent": None
        if message.weapons is None
        else {
            "reported": message.weapons.reported,
            "kinds": list(message.weapons.kinds),
            "text": message.weapons.text,
        },
        "injuriesComponent": None
        if message.injuries is None
        else {
            "reported": message.injuries.reported,
            "count": message.injuries.count,
            "text": message.injuries.text,
        },
        "notesComponent": notes,
        "linkComponent": [{"linkRole": "Transcript", "uri": message.transcript_url}]
        if message.transcript_url
        else [],
    }


class HttpCadAdapter(HttpJsonAdapter):
    """The 110 computer-aided dispatch (CAD) system: `POST {url}` with a body modelled on NENA
    EIDO, the JSON incident object US emergency centres exchange. EIDO names are kept where
    an element fits; what EIDO has no element for gets a plain English name:

    * eidoMessageIdentifier, eidoMessageKind: the outbox idempotency key; create, update
      or cancel.
    * incidentComponent: incidentTrackingIdentifier = our incident number (报警编号);
      incidentTypeCommonRegistryText / incidentTypeText = triage category and its Chinese
      label; incidentUrgencyText = immediate, urgent, normal or low; incidentStatusText =
      Received, or Cancelled when the citizen withdrew; emergencyFastPath, dangerToLifeNow,
      violenceOrThreats = emergency, call_110_now, aggression; summaryText, occurredText /
      occurredTimeStamp, ongoing = the citizen's account, when, whether it is still going on.
    * locationComponent[0]: civicAddressText (what they typed, or the map label), district,
      and geo (WGS84 latitude/longitude) when they shared a location.
    * personComponent: the Caller with masked name and phone, identityVerified,
      callBackAllowed (false = text only, e.g. cannot speak) and safe; Suspect and
      OtherParty descriptions.
    * vehicleComponent: plates and description. weaponsComponent, injuriesComponent:
      reported yes/no, kinds, count, the citizen's words.
    * notesComponent: why triage routed it to 110, and the facts not given.
    * linkComponent Transcript: `{console}/console/incidents/{number}`, the full chat behind
      the console login.

    This is EIDO-*like*, not a conformant EIDO document (no JSON-LD context, no PIDF-LO
    location): a real CAD will want a mapping layer, and this list is its specification.
    """

    receiver = "110 CAD"

    def _body(self, message: HandoffMessage) -> dict[str, Any]:
        return eido_body(message)


# --- 12345: citizen hotline work orders ----------------------------------------------------

# Deadline (办理时限) per 12345 category, in days from the transfer. A local default, not an
# official rule. `calendar_deadline` reads them as calendar days; `build_relay` passes
# `wiring.working_day_deadline` instead, which reads them as working days (调休, holidays).
DEFAULT_DEADLINE_DAYS: Mapping[str, int] = {
    "construction_noise": 2,
    "utilities": 2,
    "property": 5,
    "courier": 5,
    "environment": 5,
    "consumer": 7,
    "illegal_construction": 10,
}
FALLBACK_DEADLINE_DAYS = 7

# (transfer time, category) → the time the department must have handled it by.
DeadlineFn = Callable[[datetime, str], datetime]


def calendar_deadline(start: datetime, category: str) -> datetime:
    """`start` plus the category's calendar days (DEFAULT_DEADLINE_DAYS)."""
    return start + timedelta(days=DEFAULT_DEADLINE_DAYS.get(category, FALLBACK_DEADLINE_DAYS))


WORKORDER_SOURCE = "微信110转办"
_WORKORDER_ACTIONS = {"create": "新建", "update": "补充", "cancel": "撤销"}


def workorder_body(
    message: HandoffMessage, deadline: DeadlineFn = calendar_deadline
) -> dict[str, Any]:
    """The 12345 work order; see `HttpWorkOrderAdapter`."""
    transferred = message.submitted_at or message.created_at
    contact = message.reporter.contact
    consent = message.reporter.consent_to_contact is True and contact is not None
    address = message.location.text
    if message.location.district and address and message.location.district not in address:
        address = f"{message.location.district} {address}"
    return {
        "工单编号": message.number,
        "操作": _WORKORDER_ACTIONS[message.kind],
        "诉求类型": message.category_label,
        "诉求类型代码": message.category,
        "诉求内容": message.description,
        "地址": address or message.location.district,
        "所在区": message.location.district,
        "联系人": contact.name if consent else None,
        "联系电话": contact.phone if consent else None,
        "同意联系": message.reporter.consent_to_contact is True,
        "方便联系时间": message.reporter.contact_time,
        "来源": WORKORDER_SOURCE,
        "转办时间": _iso(transferred),
        "办理时限": _iso(deadline(transferred, message.category)),
        "转办原因": list(message.reasons),
    }


class HttpWorkOrderAdapter(HttpJsonAdapter):
    """The 12345 citizen hotline's work-order intake: `POST {url}` with a 工单:

    | field | from |
    |---|---|
    | 工单编号 | our incident number, so their staff and ours speak of the same case |
    | 操作 | 新建 / 补充 / 撤销 (create / update / cancel) |
    | 诉求类型, 诉求类型代码 | the triage category's Chinese label and its code |
    | 诉求内容 | the citizen's account (ID numbers masked) |
    | 地址, 所在区 | the location text (with district) and the district |
    | 联系人, 联系电话 | full name and phone, only if the citizen agreed to be contacted |
    | 同意联系, 方便联系时间 | the consent answer and when to call |
    | 来源 | 微信110转办 |
    | 转办时间 | when the citizen submitted the report (Asia/Shanghai) |
    | 办理时限 | `deadline(转办时间, category)`: calendar days per category by default |
    | 转办原因 | why triage routed it away from 110 |
    """

    receiver = "12345 work-order system"

    def __init__(
        self,
        url: str,
        token: str = "",
        timeout_s: float = 10.0,
        *,
        deadline: DeadlineFn = calendar_deadline,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(url, token, timeout_s, session=session)
        self._deadline = deadline

    def _body(self, message: HandoffMessage) -> dict[str, Any]:
        return workorder_body(message, self._deadline)
