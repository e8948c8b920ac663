"""What a handoff says: a `HandoffMessage` built from an incident as it was when it was handed
on (the snapshot in its outbox row). Pure: no I/O, no clock.

The message is neutral; each adapter maps it to its receiver's wire format (EIDO-like JSON
for the 110 CAD, a 工单 for 12345). Privacy rules are applied here, once, for every receiver:

* the reporter appears masked (张*, 138****5678). Only a 12345 work order whose reporter
  agreed to be contacted carries their full name and phone (`Reporter.contact`): the
  department handling it has to call back. The police open the full record in the console
  (the transcript link), behind its login and audit, rather than receiving it in bulk.
* ID document numbers typed into any free text are masked (`mask_id_numbers`) whatever the
  receiver: no handoff needs one, and receivers keep what they get.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from routing.identity import mask_id, mask_name, mask_phone, normalise_id_text
from routing.report import default_report_policy
from routing.triage import default_policy
from store.incidents import IncidentRecord
from store.outbox import CAD110, KINDS, TARGETS, WORKORDER_12345

# Receivers that get the reporter's full name and phone, and only with their consent.
FULL_CONTACT_TARGETS = frozenset({WORKORDER_12345})
# Receivers whose staff can open our console: they get the transcript link.
CONSOLE_TARGETS = frozenset({CAD110})

# Digit runs an ID number may hide in (full-width digits, spaces or hyphens between them).
_DIGIT = "[0-9\uff10-\uff19]"
_ID_RUN = re.compile(
    rf"(?<![0-9\uff10-\uff19A-Za-z]){_DIGIT}(?:[ \-]?{_DIGIT}){{13,16}}[ \-]?"
    rf"[0-9\uff10-\uff19Xx\uff38\uff58](?![0-9\uff10-\uff19])"
)
# Permits: 港澳居民来往内地通行证 (H/M + 8 or 10 digits), old 外国人永久居留证 (3 letters + 12).
_PERMIT = re.compile(r"(?<![A-Za-z0-9])(?:[HMhm]\d{8}(?:\d{2})?|[A-Za-z]{3}\d{12})(?![0-9])")


def _is_date(yyyymmdd: str) -> bool:
    try:
        datetime.strptime(yyyymmdd, "%Y%m%d")
    except ValueError:
        return False
    return True


def _looks_like_id(run: str) -> bool:
    """18 characters with a birth date at 7-14 (身份证, 居住证, new 永居证) or 15 digits with
    one at 7-12 (old 身份证). A bank card or an order number rarely has one there, and those
    stay readable: the police need them in a fraud report."""
    if len(run) == 18:
        return run[:17].isdigit() and run[6:8] in ("19", "20") and _is_date(run[6:14])
    if len(run) == 15:
        return run.isdigit() and _is_date("19" + run[6:12])
    return False


def mask_id_numbers(text: str) -> str:
    """`text` with every ID document number in it masked as on our screens (mask_id)."""

    def masked_run(match: re.Match[str]) -> str:
        run = normalise_id_text(match.group())
        return mask_id(run) if _looks_like_id(run) else match.group()

    text = _ID_RUN.sub(masked_run, text)
    return _PERMIT.sub(lambda match: mask_id(match.group().upper()), text)


@dataclass(frozen=True)
class Contact:
    """The reporter's real name and phone (from registration), for the few who may call."""

    name: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)


# Finds the reporter's contact when a message is built; None when there is none to give.
ContactLookup = Callable[[IncidentRecord], Awaitable[Contact | None]]


@dataclass(frozen=True)
class Location:
    text: str | None
    latitude: float | None = None
    longitude: float | None = None
    district: str | None = None

    @property
    def has_coordinates(self) -> bool:
        return self.latitude is not None and self.longitude is not None


@dataclass(frozen=True)
class Reporter:
    name_masked: str | None
    phone_masked: str | None
    verified: bool  # registered under their real name
    callback: bool | None  # True: may be phoned; False: text only; None: not asked
    consent_to_contact: bool | None
    safe: bool | None
    contact_time: str | None
    contact: Contact | None = field(default=None, repr=False)  # only FULL_CONTACT_TARGETS


@dataclass(frozen=True)
class Injuries:
    reported: bool | None
    count: int | None
    text: str | None


@dataclass(frozen=True)
class Weapons:
    reported: bool | None
    kinds: tuple[str, ...]
    text: str | None


@dataclass(frozen=True)
class Vehicle:
    plates: tuple[str, ...]
    text: str | None


@dataclass(frozen=True)
class HandoffMessage:
    """One handoff, receiver-neutral; `idempotency_key` is the outbox row's."""

    target: str
    kind: str  # create | update | cancel
    idempotency_key: str
    number: str
    route: str
    route_label: str
    category: str
    category_label: str
    urgency: str
    status: str
    emergency: bool
    call_110_now: bool
    aggression: bool
    description: str | None
    location: Location
    time_text: str | None
    time_iso: str | None
    ongoing: bool | None
    injuries: Injuries | None
    weapons: Weapons | None
    suspects: str | None
    other_party: str | None
    vehicles: tuple[Vehicle, ...]
    reporter: Reporter
    reasons: tuple[str, ...]  # why triage routed it here, for the receiving operator
    missing: tuple[str, ...]  # labels of facts the citizen did not give
    completeness: float
    transcript_url: str | None
    created_at: datetime
    submitted_at: datetime | None
    updated_at: datetime


def _text(value: Any) -> str | None:  # noqa: ANN401 - JSON from the sealed details
    if value is None:
        return None
    text = str(value).strip()
    return mask_id_numbers(text) if text else None


def _yes_no(answer: Mapping[str, Any] | None) -> bool | None:
    if not answer:
        return None
    return {"yes": True, "no": False}.get(str(answer.get("answer")))


def _answer_text(answer: Mapping[str, Any] | None) -> str | None:
    return None if not answer else _text(answer.get("text"))


def _float(value: Any) -> float | None:  # noqa: ANN401 - JSON
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _location(answer: Mapping[str, Any] | None, district: str | None) -> Location:
    answer = answer or {}
    label = answer.get("label") if answer.get("label") else answer.get("text")
    return Location(
        text=_text(label),
        latitude=_float(answer.get("lat")),
        longitude=_float(answer.get("lng")),
        district=district or answer.get("district"),
    )


def _injuries(answer: Mapping[str, Any] | None) -> Injuries | None:
    if not answer:
        return None
    count = answer.get("count")
    return Injuries(
        reported=_yes_no(answer),
        count=int(count) if isinstance(count, int) else None,
        text=_answer_text(answer),
    )


def _weapons(answer: Mapping[str, Any] | None) -> Weapons | None:
    if not answer:
        return None
    kinds = tuple(str(kind) for kind in answer.get("kinds") or ())
    return Weapons(reported=_yes_no(answer), kinds=kinds, text=_answer_text(answer))


def _vehicles(answer: Mapping[str, Any] | None) -> tuple[Vehicle, ...]:
    if not answer or answer.get("answer") == "no":
        return ()
    plates = tuple(str(plate) for plate in answer.get("plates") or ())
    return (Vehicle(plates=plates, text=_answer_text(answer)),)


def _reporter(
    record: IncidentRecord,
    answers: Mapping[str, Any],
    contact: Contact | None,
    target: str,
) -> Reporter:
    consent = _yes_no(answers.get("contact_consent"))
    full = contact if target in FULL_CONTACT_TARGETS and consent is True else None
    return Reporter(
        name_masked=mask_name(contact.name) if contact and contact.name else None,
        phone_masked=mask_phone(contact.phone) if contact and contact.phone else None,
        verified=record.verified,
        callback=_yes_no(answers.get("callback")),
        consent_to_contact=consent,
        safe=_yes_no(answers.get("reporter_safe")),
        contact_time=_answer_text(answers.get("contact_time")),
        contact=full,
    )


def transcript_url(console_base_url: str, number: str) -> str:
    return f"{console_base_url.rstrip('/')}/console/incidents/{number}"


def build_message(
    record: IncidentRecord,
    *,
    target: str,
    kind: str,
    idempotency_key: str,
    console_base_url: str,
    contact: Contact | None = None,
) -> HandoffMessage:
    """The message for `target` about `record`, masked as the module docstring says.

    `record.details` is what the report form stores: `{"answers": {field: answer}, "reasons":
    [...]}` with answers as in routing.report (`text`, and `lat`/`lng`, `count`, `kinds`,
    `plates`, `iso` by kind of fact). Unknown or missing facts come out as None.
    """
    if target not in TARGETS or kind not in KINDS:
        raise ValueError(f"unknown target or kind: {target!r}, {kind!r}")
    policy = default_policy()
    answers: Mapping[str, Any] = record.details.get("answers") or {}
    fields = default_report_policy().fields
    time_answer = answers.get("time") or {}
    return HandoffMessage(
        target=target,
        kind=kind,
        idempotency_key=idempotency_key,
        number=record.number,
        route=record.route,
        route_label=policy.route_labels.get(record.route, record.route),
        category=record.category,
        category_label=policy.label(record.route, record.category),
        urgency=record.urgency,
        status=record.status,
        emergency=record.emergency,
        call_110_now=record.call_110_now,
        aggression=record.aggression,
        description=_answer_text(answers.get("description")),
        location=_location(answers.get("location"), record.district),
        time_text=_answer_text(time_answer),
        time_iso=time_answer.get("iso"),
        ongoing=_yes_no(answers.get("ongoing")),
        injuries=_injuries(answers.get("injured")),
        weapons=_weapons(answers.get("weapons")),
        suspects=_answer_text(answers.get("suspects")),
        other_party=_answer_text(answers.get("other_party")),
        vehicles=_vehicles(answers.get("vehicle")),
        reporter=_reporter(record, answers, contact, target),
        reasons=tuple(
            text for text in map(_text, record.details.get("reasons") or ()) if text is not None
        ),
        missing=tuple(fields[key].label if key in fields else key for key in record.missing),
        completeness=record.completeness,
        transcript_url=(
            transcript_url(console_base_url, record.number) if target in CONSOLE_TARGETS else None
        ),
        created_at=record.created_at,
        submitted_at=record.submitted_at,
        updated_at=record.updated_at,
    )
