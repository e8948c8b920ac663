"""Where a handoff finds the reporter's name and phone, and who may see the phone in full.

* `registered_contact`: the registration, sealed at rest. The message builders decide what
  each target may see (masked for the 110 CAD, in full for 12345 only with the citizen's
  consent); this only opens the registered identity.
* `reporter_phone`: the number a mediator may call: the registered phone, else a mobile
  number the reporter wrote in their report when they agreed to be contacted (answered 是否同意
  联系 with yes, or told us 方便联系的时间 without refusing).
* `AuditedPhones`: the mediator page's 查看联系电话. Every look is written to the audit log
  (who, which incident, which offer, where the number came from; never the number) before
  the number is shown; `masked` is for the page before that.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from routing.handoff.messages import Contact, ContactLookup
from routing.identity import mask_phone, mobiles_in_text
from store.audit import AuditLog
from store.crypto import PiiCipher
from store.db import Database
from store.incidents import IncidentRecord
from store.registrations import RegistrationStore

REGISTERED, REPORT = "registered", "report"
REVEAL_PHONE = "reveal_reporter_phone"


def registered_contact(store: RegistrationStore) -> ContactLookup:
    async def lookup(record: IncidentRecord) -> Contact | None:
        identity = await store.identity(record.channel, record.sender_id)
        if identity is None:
            return None
        return Contact(name=identity.name, phone=identity.phone)

    return lookup


@dataclass(frozen=True)
class ReporterPhone:
    phone: str = field(repr=False)
    source: str  # REGISTERED | REPORT

    @property
    def masked(self) -> str:
        return mask_phone(self.phone)


PhoneLookup = Callable[[IncidentRecord], Awaitable[ReporterPhone | None]]


def consents_to_contact(answers: Mapping[str, Any]) -> bool:
    """Agreed to be contacted: 是否同意联系 answered yes, or 方便联系的时间 given (a mediation
    report asks that instead) and contact not refused."""
    consent = (answers.get("contact_consent") or {}).get("answer")
    if consent in ("yes", "no"):
        return consent == "yes"
    contact_time = answers.get("contact_time") or {}
    return contact_time.get("answer") == "given" and bool(contact_time.get("text"))


def phone_from_report(record: IncidentRecord) -> str | None:
    """The first mobile number the reporter wrote in their answers, with their consent."""
    answers = record.details.get("answers") or {}
    if not consents_to_contact(answers):
        return None
    for answer in answers.values():
        text = answer.get("text") if isinstance(answer, Mapping) else None
        if isinstance(text, str):
            for phone in mobiles_in_text(text):
                return phone
    return None


def reporter_phone(contacts: ContactLookup) -> PhoneLookup:
    """The registered phone (through `contacts`), else the consented one in the report."""

    async def lookup(record: IncidentRecord) -> ReporterPhone | None:
        contact = await contacts(record)
        if contact is not None and contact.phone:
            return ReporterPhone(contact.phone, REGISTERED)
        phone = phone_from_report(record)
        return None if phone is None else ReporterPhone(phone, REPORT)

    return lookup


class AuditedPhones:
    """The reporter's phone for the mediator page: masked freely, in full only audited."""

    def __init__(self, phones: PhoneLookup, audit: AuditLog) -> None:
        self._phones = phones
        self._audit = audit

    @classmethod
    def from_database(cls, db: Database, cipher: PiiCipher) -> AuditedPhones:
        return cls(reporter_phone(registered_contact(RegistrationStore(db, cipher))), AuditLog(db))

    async def masked(self, record: IncidentRecord) -> str | None:
        found = await self._phones(record)
        return None if found is None else found.masked

    async def reveal(
        self, record: IncidentRecord, *, mediator_id: str, assignment_id: int
    ) -> ReporterPhone | None:
        """The phone in full, after the audit record is written (no record, no number)."""
        found = await self._phones(record)
        await self._audit.record(
            f"mediator:{mediator_id}",
            REVEAL_PHONE,
            "incident",
            record.number,
            assignment_id=assignment_id,
            source=None if found is None else found.source,
        )
        return found
