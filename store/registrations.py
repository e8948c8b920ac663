"""Real-name registration at rest: drafts while a citizen registers, the registered identity,
SMS code sends, and erasure. Every identity value is sealed; equality is by keyed hash.

Values arrive already checked (routing/identity.py): nothing half-valid is stored. This
module returns opened values to the registration service only; screens get masked forms.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, not_, select, update
from sqlalchemy.sql import ColumnElement, Select

from store.citizens import citizen_key
from store.crypto import PiiCipher
from store.db import Database
from store.models import (
    AuditEntry,
    Citizen,
    Incident,
    OtpSend,
    RegistrationDraft,
    as_utc,
    utcnow,
)

REGISTERED, ERASED = "registered", "erased"
_ID_HASH, _PHONE_HASH = "id_number", "phone"


class IdentityTaken(Exception):
    """The ID number belongs to another active account (one ID, one account)."""


@dataclass(frozen=True)
class Identity:
    """Opened identity values: for the service that masks them, never for a screen or a log."""

    name: str | None = field(default=None, repr=False)
    id_kind: str | None = None
    id_number: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    otp: dict[str, Any] | None = field(default=None, repr=False)
    status: str | None = None
    registered_at: datetime | None = None


def _citizen_of(channel: str, sender_id: str) -> ColumnElement[bool]:
    channel, sender_id = citizen_key(channel, sender_id)
    return and_(Citizen.channel == channel, Citizen.sender_id == sender_id)


def _draft_of(channel: str, sender_id: str) -> ColumnElement[bool]:
    channel, sender_id = citizen_key(channel, sender_id)
    return and_(RegistrationDraft.channel == channel, RegistrationDraft.sender_id == sender_id)


def _registered_elsewhere(id_hash: str, channel: str, sender_id: str) -> Select:
    """An active account other than this one holding the ID number: one ID, one account."""
    return (
        select(Citizen.id)
        .where(
            Citizen.id_number_hash == id_hash,
            Citizen.status == REGISTERED,
            not_(_citizen_of(channel, sender_id)),
        )
        .limit(1)
    )


class RegistrationStore:
    def __init__(
        self, db: Database, cipher: PiiCipher, now: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._now = now

    def id_hash(self, id_number: str) -> str:
        return self._cipher.lookup_hash(id_number, _ID_HASH)

    def phone_hash(self, phone: str) -> str:
        return self._cipher.lookup_hash(phone, _PHONE_HASH)

    def _seal(self, value: str | None, column: str) -> bytes | None:
        return None if value is None else self._cipher.seal(value, column)

    def _open(self, sealed: bytes | None, column: str) -> str | None:
        return None if sealed is None else self._cipher.open(sealed, column)

    # --- the draft while registering ---

    async def draft(self, channel: str, sender_id: str) -> Identity | None:
        query = select(RegistrationDraft).where(_draft_of(channel, sender_id))
        async with self._db.reader() as session:
            row = (await session.execute(query)).scalar_one_or_none()
        if row is None:
            return None
        otp = self._open(row.otp_sealed, "registration_drafts.otp")
        return Identity(
            name=self._open(row.name_sealed, "registration_drafts.name"),
            id_kind=row.id_kind,
            id_number=self._open(row.id_number_sealed, "registration_drafts.id_number"),
            phone=self._open(row.phone_sealed, "registration_drafts.phone"),
            otp=json.loads(otp) if otp else None,
        )

    async def save_draft(self, channel: str, sender_id: str, **values: Any) -> None:
        """Keep checked values: name, id_kind + id_number, phone, otp (a dict, or None to drop)."""
        columns: dict[str, Any] = {"updated_at": self._now()}
        if "name" in values:
            columns["name_sealed"] = self._seal(values["name"], "registration_drafts.name")
        if "id_number" in values:
            number = values["id_number"]
            columns["id_kind"] = values.get("id_kind")
            columns["id_number_sealed"] = self._seal(number, "registration_drafts.id_number")
            columns["id_number_hash"] = self.id_hash(number) if number else None
        if "phone" in values:
            phone = values["phone"]
            columns["phone_sealed"] = self._seal(phone, "registration_drafts.phone")
            columns["phone_hash"] = self.phone_hash(phone) if phone else None
        if "otp" in values:
            otp = values["otp"]
            columns["otp_sealed"] = self._seal(
                json.dumps(otp) if otp is not None else None, "registration_drafts.otp"
            )
        async with self._db.session() as session:
            found = await session.execute(
                update(RegistrationDraft).where(_draft_of(channel, sender_id)).values(**columns)
            )
            if found.rowcount == 0:
                owner, owner_id = citizen_key(channel, sender_id)
                await session.execute(
                    insert(RegistrationDraft).values(
                        channel=owner, sender_id=owner_id, created_at=self._now(), **columns
                    )
                )

    async def discard_draft(self, channel: str, sender_id: str) -> None:
        async with self._db.session() as session:
            await session.execute(delete(RegistrationDraft).where(_draft_of(channel, sender_id)))

    # --- SMS code sends (rate limits across accounts and workers) ---

    async def sends_since(self, keys: Iterable[str], since: datetime) -> dict[str, list[float]]:
        keys = list(keys)
        query = (
            select(OtpSend.key, OtpSend.sent_at)
            .where(OtpSend.key.in_(keys), OtpSend.sent_at >= since)
            .order_by(OtpSend.sent_at)
        )
        async with self._db.reader() as session:
            rows = (await session.execute(query)).all()
        found: dict[str, list[float]] = {key: [] for key in keys}
        for key, at in rows:
            found[key].append(as_utc(at).timestamp())
        return found

    async def record_send(self, keys: Iterable[str], at: datetime) -> None:
        """Kept before the SMS goes out: a crash must not turn into unlimited sends."""
        async with self._db.session() as session:
            await session.execute(insert(OtpSend), [{"key": key, "sent_at": at} for key in keys])
            await session.execute(delete(OtpSend).where(OtpSend.sent_at < at - timedelta(days=2)))

    # --- the registered identity ---

    async def id_taken(self, id_number: str, channel: str, sender_id: str) -> bool:
        query = _registered_elsewhere(self.id_hash(id_number), channel, sender_id)
        async with self._db.reader() as session:
            return (await session.execute(query)).first() is not None

    async def register(self, channel: str, sender_id: str, identity: Identity) -> int:
        """Move a complete draft to the citizen record in one transaction; the draft goes."""
        assert identity.name and identity.id_number and identity.phone and identity.id_kind
        id_hash = self.id_hash(identity.id_number)
        now = self._now()
        async with self._db.session() as session:
            taken = await session.execute(_registered_elsewhere(id_hash, channel, sender_id))
            if taken.first() is not None:
                raise IdentityTaken
            values = {
                "status": REGISTERED,
                "name_sealed": self._cipher.seal(identity.name, "citizens.name"),
                "id_kind": identity.id_kind,
                "id_number_sealed": self._cipher.seal(identity.id_number, "citizens.id_number"),
                "id_number_hash": id_hash,
                "phone_sealed": self._cipher.seal(identity.phone, "citizens.phone"),
                "phone_hash": self.phone_hash(identity.phone),
                "registered_at": now,
                "erased_at": None,
                "updated_at": now,
            }
            found = await session.execute(
                update(Citizen).where(_citizen_of(channel, sender_id)).values(**values)
            )
            if found.rowcount == 0:
                owner, owner_id = citizen_key(channel, sender_id)
                await session.execute(
                    insert(Citizen).values(
                        channel=owner, sender_id=owner_id, created_at=now, **values
                    )
                )
            citizen_id = (
                await session.execute(select(Citizen.id).where(_citizen_of(channel, sender_id)))
            ).scalar_one()
            await session.execute(delete(RegistrationDraft).where(_draft_of(channel, sender_id)))
            session.add(
                AuditEntry(
                    actor="citizen",
                    action="registered",
                    target_type="citizen",
                    target_id=str(citizen_id),
                    details={"id_kind": identity.id_kind},
                )
            )
        return citizen_id

    async def identity(self, channel: str, sender_id: str) -> Identity | None:
        query = select(Citizen).where(_citizen_of(channel, sender_id))
        async with self._db.reader() as session:
            row = (await session.execute(query)).scalar_one_or_none()
        if row is None or row.status != REGISTERED:
            return None
        return Identity(
            name=self._open(row.name_sealed, "citizens.name"),
            id_kind=row.id_kind,
            id_number=self._open(row.id_number_sealed, "citizens.id_number"),
            phone=self._open(row.phone_sealed, "citizens.phone"),
            status=row.status,
            registered_at=as_utc(row.registered_at),
        )

    async def change_phone(self, channel: str, sender_id: str, phone: str) -> None:
        async with self._db.session() as session:
            await session.execute(
                update(Citizen)
                .where(_citizen_of(channel, sender_id), Citizen.status == REGISTERED)
                .values(
                    phone_sealed=self._cipher.seal(phone, "citizens.phone"),
                    phone_hash=self.phone_hash(phone),
                    updated_at=self._now(),
                )
            )
            session.add(AuditEntry(actor="citizen", action="phone_changed", target_type="citizen"))

    async def erase(self, channel: str, sender_id: str) -> bool:
        """The owner's erasure: identity gone, the account closed. Incidents are kept (police
        records must be retained) but no longer point to the person."""
        now = self._now()
        async with self._db.session() as session:
            row = (
                await session.execute(select(Citizen.id).where(_citizen_of(channel, sender_id)))
            ).scalar_one_or_none()
            await session.execute(delete(RegistrationDraft).where(_draft_of(channel, sender_id)))
            if row is None:
                return False
            await session.execute(
                update(Citizen)
                .where(Citizen.id == row)
                .values(
                    status=ERASED,
                    name_sealed=None,
                    id_kind=None,
                    id_number_sealed=None,
                    id_number_hash=None,
                    phone_sealed=None,
                    phone_hash=None,
                    erased_at=now,
                    updated_at=now,
                )
            )
            await session.execute(
                update(Incident).where(Incident.citizen_id == row).values(citizen_id=None)
            )
            session.add(
                AuditEntry(
                    actor="citizen", action="erased", target_type="citizen", target_id=str(row)
                )
            )
        return True
