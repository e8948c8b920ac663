"""Incidents: a report from its first message (a draft) to closure, with a timeline and files.

What the citizen said is sealed (`details`, event notes, attachment bytes). What stays in
clear is what a queue sorts and filters on (route, category, urgency, status, flags) and the
keys of the fields still missing, never their values.

Handing a report on (to the 110 CAD, 12345 or a mediator) writes an outbox row in the same
transaction as the change that causes it (`store.outbox`): the row carries a sealed snapshot
of the incident, and a relay delivers it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from store import models, outbox
from store.citizens import same_citizen_channels
from store.crypto import PiiCipher
from store.db import Database
from store.models import as_utc, utcnow

SHANGHAI = ZoneInfo("Asia/Shanghai")

# The same values as routing.triage (which sits above us, so we cannot import it).
POLICE, CIVIC, MEDIATION = "police", "12345", "mediation"
ROUTES = (POLICE, CIVIC, MEDIATION)
URGENCIES = ("immediate", "urgent", "normal", "low")  # most urgent first: the queue order

DRAFT = "draft"
RECEIVED = "received"
DISPATCHED = "dispatched"
TRANSFERRED_12345 = "transferred_12345"
TRANSFERRED_MEDIATION = "transferred_mediation"
IN_PROGRESS = "in_progress"
CLOSED = "closed"
CANCELLED = "cancelled"
STATUS_LABELS = {
    DRAFT: "填写中",
    RECEIVED: "已受理",
    DISPATCHED: "已派警",
    TRANSFERRED_12345: "已转12345",
    TRANSFERRED_MEDIATION: "已转调解",
    IN_PROGRESS: "处理中",
    CLOSED: "已办结",
    CANCELLED: "已撤销",
}
FINAL_STATUSES = frozenset({CLOSED, CANCELLED})
# Which system takes an incident of each route.
HANDOFF_TARGETS = {
    POLICE: outbox.CAD110,
    CIVIC: outbox.WORKORDER_12345,
    MEDIATION: outbox.MEDIATION,
}
EVENT_LABELS = {
    "created": "创建",
    "updated": "补充信息",
    "submitted": "提交",
    "status": "状态变更",
    "cancelled": "撤销",
    "attachment": "附件",
    "note": "备注",
}

_MB = 1024 * 1024
ATTACHMENT_LIMITS = {"image": 10 * _MB, "voice": 5 * _MB, "video": 25 * _MB}
ATTACHMENT_TYPES = {
    "image": frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"}),
    "voice": frozenset({"audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg", "audio/wav"}),
    "video": frozenset({"video/mp4", "video/quicktime"}),
}
# Names clients really send for the types above; we store the canonical one.
_MIME_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/mp3": "audio/mpeg",
    "audio/m4a": "audio/mp4",
    "audio/x-m4a": "audio/mp4",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
}
# A browser shows images inline in the console: the bytes must be what the type says.
_IMAGE_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "image/jpeg": lambda data: data.startswith(b"\xff\xd8\xff"),
    "image/png": lambda data: data.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/gif": lambda data: data[:6] in (b"GIF87a", b"GIF89a"),
    "image/webp": lambda data: data[:4] == b"RIFF" and data[8:12] == b"WEBP",
}


class IncidentError(Exception):
    """Base class of what the incident store refuses."""


class IncidentNotFound(IncidentError, LookupError):
    """No such incident, or not the caller's.

    Numbers are sequential and easy to guess, so a stranger is not told that one exists.
    """


class IncidentClosed(IncidentError):
    """The incident is closed or cancelled: it takes no more changes."""


class EmergencyRouteLocked(IncidentError, ValueError):
    """An emergency reported to the police stays with the police, whatever triage says later."""


class AttachmentRejected(IncidentError, ValueError):
    """An upload we do not keep; `reason` is one of empty, bad_type, too_large, bad_content."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def same_reporter(made_on: str, made_by: str, channel: str, sender_id: str) -> bool:
    """A report made on channel `made_on` by `made_by` is this citizen's: the same id, on this
    channel or one that knows them by the same id (the mini-program and /wechat of one app)."""
    return made_by == sender_id and made_on in same_citizen_channels(channel)


@dataclass(frozen=True)
class IncidentRecord:
    id: int
    number: str
    channel: str
    sender_id: str
    citizen_id: int | None
    route: str
    category: str
    urgency: str
    call_110_now: bool
    aggression: bool
    emergency: bool
    verified: bool
    status: str
    details: dict[str, Any]
    completeness: float
    missing: tuple[str, ...]
    district: str | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    closed_at: datetime | None

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def is_open(self) -> bool:
        return self.status not in FINAL_STATUSES

    def reported_by(self, channel: str, sender_id: str) -> bool:
        return same_reporter(self.channel, self.sender_id, channel, sender_id)


@dataclass(frozen=True)
class IncidentEvent:
    id: int
    at: datetime
    kind: str
    status: str | None
    actor: str
    note: str | None

    @property
    def label(self) -> str:
        """What the citizen reads for this event: the new status, or what happened."""
        shown = STATUS_LABELS.get(self.status or "", "") if self.kind == "status" else ""
        return shown or EVENT_LABELS.get(self.kind, self.kind)


@dataclass(frozen=True)
class AttachmentMeta:
    id: int
    kind: str
    mime: str
    size: int
    sha256: str
    created_at: datetime


def shanghai_day(moment: datetime) -> str:
    """YYYYMMDD of `moment` in Shanghai: the day a citizen and a call-taker both mean."""
    return moment.astimezone(SHANGHAI).strftime("%Y%m%d")


def check_attachment(kind: str, mime: str, data: bytes) -> str:
    """The canonical MIME type of an acceptable upload; raises `AttachmentRejected` otherwise."""
    if kind not in ATTACHMENT_TYPES:
        raise AttachmentRejected("bad_type", f"kind {kind!r}")
    canonical = mime.split(";", 1)[0].strip().lower()
    canonical = _MIME_ALIASES.get(canonical, canonical)
    if canonical not in ATTACHMENT_TYPES[kind]:
        raise AttachmentRejected("bad_type", f"{mime!r} is not an allowed {kind} type")
    if not data:
        raise AttachmentRejected("empty")
    if len(data) > ATTACHMENT_LIMITS[kind]:
        raise AttachmentRejected("too_large", f"{len(data)} > {ATTACHMENT_LIMITS[kind]} bytes")
    signature = _IMAGE_SIGNATURES.get(canonical)
    if signature is not None and not signature(data):
        raise AttachmentRejected("bad_content", f"bytes are not {canonical}")
    return canonical


_SNAPSHOT_TIMES = ("created_at", "updated_at", "submitted_at", "closed_at")


def record_snapshot(record: IncidentRecord) -> dict[str, Any]:
    """The record as JSON-able data: what an outbox row carries (sealed) to the relay."""
    data = {name: getattr(record, name) for name in IncidentRecord.__dataclass_fields__}
    data["missing"] = list(record.missing)
    for name in _SNAPSHOT_TIMES:
        data[name] = None if data[name] is None else data[name].isoformat()
    return data


def record_from_snapshot(data: Mapping[str, Any]) -> IncidentRecord:
    """The record back from `record_snapshot`, as it was when the handoff was queued."""
    values = {name: data.get(name) for name in IncidentRecord.__dataclass_fields__}
    values["missing"] = tuple(values["missing"] or ())
    values["details"] = dict(values["details"] or {})
    for name in _SNAPSHOT_TIMES:
        if values[name] is not None:
            values[name] = as_utc(datetime.fromisoformat(values[name]))
    return IncidentRecord(**values)


def _attachment_meta(row: Any) -> AttachmentMeta:  # noqa: ANN401 - ORM row or result row
    return AttachmentMeta(
        id=row.id,
        kind=row.kind,
        mime=row.mime,
        size=row.size,
        sha256=row.sha256,
        created_at=as_utc(row.created_at),
    )


def _check_choice(name: str, value: str, allowed: Iterable[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}")


def _check_completeness(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"completeness must be within 0..1, got {value}")
    return float(value)


class IncidentBook:
    """Incidents, their timeline and their attachments; hands out records, never ORM rows.

    `now` is injectable so tests can cross a Shanghai midnight without waiting for one.
    """

    def __init__(
        self, db: Database, cipher: PiiCipher, now: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._clock = now

    def _now(self) -> datetime:
        moment = self._clock()
        if moment.tzinfo is None:
            raise ValueError("the clock must give timezone-aware datetimes")
        return moment.astimezone(timezone.utc)  # SQLite drops the offset: store UTC only

    # --- sealing: each ciphertext is bound to its incident, so rows cannot be swapped ---

    def _seal_details(self, number: str, details: Mapping[str, Any]) -> bytes:
        text = json.dumps(dict(details), ensure_ascii=False, sort_keys=True)
        return self._cipher.seal(text, f"incidents.details:{number}")

    def _open_details(self, row: models.Incident) -> dict[str, Any]:
        return json.loads(self._cipher.open(row.details_sealed, f"incidents.details:{row.number}"))

    def _seal_note(self, number: str, note: str | None) -> bytes | None:
        if not note:
            return None
        return self._cipher.seal(note, f"incident_events.note:{number}")

    def _open_note(self, number: str, sealed: bytes | None) -> str | None:
        return (
            None if sealed is None else self._cipher.open(sealed, f"incident_events.note:{number}")
        )

    def _record(self, row: models.Incident) -> IncidentRecord:
        return IncidentRecord(
            id=row.id,
            number=row.number,
            channel=row.channel,
            sender_id=row.sender_id,
            citizen_id=row.citizen_id,
            route=row.route,
            category=row.category,
            urgency=row.urgency,
            call_110_now=bool(row.call_110_now),
            aggression=bool(row.aggression),
            emergency=bool(row.emergency),
            verified=bool(row.verified),
            status=row.status,
            details=self._open_details(row),
            completeness=row.completeness,
            missing=tuple(row.missing or ()),
            district=row.district,
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
            submitted_at=as_utc(row.submitted_at),
            closed_at=as_utc(row.closed_at),
        )

    # --- writing ---

    async def _next_number(self, session: AsyncSession, now: datetime) -> str:
        """Count up the day's sequence in the caller's transaction.

        The upsert is atomic and keeps the counter row locked until commit, so concurrent
        reports on PostgreSQL queue on it, and a rolled-back report leaves no gap. (On SQLite
        the Database write lock already lets one writer in at a time.) Past 99999 a day the
        sequence simply grows a digit.
        """
        day = shanghai_day(now)
        table = models.IncidentCounter
        dialect = sqlite if self._db.is_sqlite else postgresql
        upsert = dialect.insert(table).values(day=day, last=1)
        upsert = upsert.on_conflict_do_update(
            index_elements=[table.day], set_={"last": table.last + 1}
        )
        if self._db.is_sqlite:  # SQLAlchemy 1.4 has no RETURNING for SQLite
            await session.execute(upsert)
            sequence = (
                await session.execute(select(table.last).where(table.day == day))
            ).scalar_one()
        else:
            sequence = (await session.execute(upsert.returning(table.last))).scalar_one()
        return f"{day}{sequence:05d}"

    async def _locked(self, session: AsyncSession, number: str) -> models.Incident:
        query = select(models.Incident).where(models.Incident.number == number).with_for_update()
        row = (await session.execute(query)).scalar_one_or_none()
        if row is None:
            raise IncidentNotFound(number)
        return row

    async def _hand_off(
        self, session: AsyncSession, row: models.Incident, kind: str, now: datetime, target: str
    ) -> str:
        """Queue `kind` for `target` in this transaction, with the incident as it is now."""
        await session.flush()  # the snapshot and the outbox row need the incident's id
        return await outbox.enqueue(
            session,
            self._cipher,
            incident_id=row.id,
            number=row.number,
            target=target,
            kind=kind,
            payload={"incident": record_snapshot(self._record(row))},
            now=now,
        )

    async def _sync_handoff(
        self, session: AsyncSession, row: models.Incident, now: datetime
    ) -> None:
        """Tell the system holding a handed-off incident what changed; if triage or a
        call-taker moved it to another route, cancel it there and create it at the new one.
        An incident never handed off (a draft, or one a call-taker moved on) has nobody to tell.
        """
        holder = await outbox.active_target(session, row.id)
        if holder is None:
            return
        wanted = HANDOFF_TARGETS[row.route]
        if holder == wanted:
            await self._hand_off(session, row, outbox.UPDATE, now, holder)
        else:
            await self._hand_off(session, row, outbox.CANCEL, now, holder)
            await self._hand_off(session, row, outbox.CREATE, now, wanted)

    @staticmethod
    def _ensure_reporter(row: models.Incident, channel: str, sender_id: str) -> None:
        if not same_reporter(row.channel, row.sender_id, channel, sender_id):
            raise IncidentNotFound(row.number)

    @staticmethod
    def _ensure_open(row: models.Incident) -> None:
        if row.status in FINAL_STATUSES:
            raise IncidentClosed(row.number)

    def _append(
        self,
        session: AsyncSession,
        row: models.Incident,
        at: datetime,
        kind: str,
        actor: str,
        note: str | None = None,
    ) -> models.IncidentEvent:
        event = models.IncidentEvent(
            incident_id=row.id,
            at=at,
            kind=kind,
            status=row.status,
            actor=actor,
            note_sealed=self._seal_note(row.number, note),
        )
        session.add(event)
        return event

    async def open_draft(
        self,
        channel: str,
        sender_id: str,
        *,
        route: str,
        category: str,
        urgency: str,
        call_110_now: bool,
        aggression: bool,
        emergency: bool,
        verified: bool,
        details: Mapping[str, Any],
        missing: Iterable[str],
        completeness: float,
        district: str | None = None,
        status: str = DRAFT,
        citizen_id: int | None = None,
        actor: str = "citizen",
    ) -> IncidentRecord:
        """Number and store a new report with its `created` event, in one transaction.

        The emergency fast path passes status="received" so call-takers see it at once; the
        handoff to the route's system is queued in the same transaction.
        """
        _check_choice("route", route, ROUTES)
        _check_choice("urgency", urgency, URGENCIES)
        _check_choice("initial status", status, (DRAFT, RECEIVED))
        completeness = _check_completeness(completeness)
        missing_keys = [str(key) for key in missing]
        async with self._db.session() as session:
            now = self._now()
            number = await self._next_number(session, now)
            row = models.Incident(
                number=number,
                channel=channel,
                sender_id=sender_id,
                citizen_id=citizen_id,
                route=route,
                category=category,
                urgency=urgency,
                call_110_now=call_110_now,
                aggression=aggression,
                emergency=emergency,
                verified=verified,
                status=status,
                details_sealed=self._seal_details(number, details),
                completeness=completeness,
                missing=missing_keys,
                district=district,
                created_at=now,
                updated_at=now,
                submitted_at=None if status == DRAFT else now,
            )
            session.add(row)
            await session.flush()
            if status == RECEIVED:
                await self._hand_off(session, row, outbox.CREATE, now, HANDOFF_TARGETS[route])
            self._append(session, row, now, "created", actor)
        return self._record(row)

    async def update(
        self,
        number: str,
        *,
        details: Mapping[str, Any] | None = None,
        missing: Iterable[str] | None = None,
        completeness: float | None = None,
        route: str | None = None,
        category: str | None = None,
        urgency: str | None = None,
        call_110_now: bool | None = None,
        aggression: bool | None = None,
        emergency: bool | None = None,
        district: str | None = None,
        actor: str = "citizen",
    ) -> IncidentRecord:
        """Enrich a report as the chat goes on; None leaves a field as it is.

        `details` is merged into what is stored: a key given with the value None is removed.
        The `updated` event's (sealed) note names what changed, not the new values. An
        emergency police report cannot be rerouted (`EmergencyRouteLocked`), nor can an
        emergency be un-flagged. Nothing changed, nothing written. A change to an incident
        already handed off is queued for the system that holds it (`_sync_handoff`).
        """
        if route is not None:
            _check_choice("route", route, ROUTES)
        if urgency is not None:
            _check_choice("urgency", urgency, URGENCIES)
        if completeness is not None:
            completeness = _check_completeness(completeness)
        async with self._db.session() as session:
            row = await self._locked(session, number)
            self._ensure_open(row)
            is_emergency = row.emergency or bool(emergency)
            if route is not None and route != row.route and is_emergency and row.route == POLICE:
                raise EmergencyRouteLocked(f"{number} is an emergency: it stays with the police")
            if emergency is False and row.emergency:
                raise ValueError(f"{number} is an emergency and stays one")
            changes: list[str] = []
            for name, value in (
                ("route", route),
                ("category", category),
                ("urgency", urgency),
                ("call_110_now", call_110_now),
                ("aggression", aggression),
                ("emergency", emergency),
                ("district", district),
            ):
                old = getattr(row, name)
                if value is not None and value != old:
                    setattr(row, name, value)
                    changes.append(f"{name}: {old} → {value}")
            if details is not None:
                stored = self._open_details(row)
                merged = {**stored, **details}
                merged = {key: value for key, value in merged.items() if value is not None}
                changed = sorted(
                    key
                    for key in stored.keys() | merged.keys()
                    if stored.get(key) != merged.get(key)
                )
                if changed:
                    row.details_sealed = self._seal_details(number, merged)
                    changes.append("details: " + ", ".join(changed))
            if missing is not None:
                missing_keys = [str(key) for key in missing]
                if missing_keys != list(row.missing or ()):
                    row.missing = missing_keys
                    changes.append("missing")
            if completeness is not None and completeness != row.completeness:
                changes.append(f"completeness: {row.completeness:.2f} → {completeness:.2f}")
                row.completeness = completeness
            if changes:
                now = self._now()
                row.updated_at = now
                self._append(session, row, now, "updated", actor, "; ".join(changes))
                if row.status != DRAFT:
                    await self._sync_handoff(session, row, now)
        return self._record(row)

    async def submit(self, number: str, actor: str = "citizen") -> IncidentRecord:
        """Hand a draft on (draft → received) and queue its handoff to the route's system in
        the same transaction. Submitting again changes nothing."""
        async with self._db.session() as session:
            row = await self._locked(session, number)
            self._ensure_open(row)
            if row.status == DRAFT:
                now = self._now()
                row.status = RECEIVED
                row.submitted_at = row.updated_at = now
                await self._hand_off(session, row, outbox.CREATE, now, HANDOFF_TARGETS[row.route])
                self._append(session, row, now, "submitted", actor)
        return self._record(row)

    async def set_status(
        self, number: str, status: str, *, actor: str, note: str | None = None
    ) -> IncidentRecord:
        """Move an incident on (call-taker, handoff). Nothing moves back to draft or out of
        closed/cancelled; the same status again only records the note, if any."""
        _check_choice("status", status, STATUS_LABELS)
        if status == DRAFT:
            raise ValueError("an incident cannot go back to draft")
        async with self._db.session() as session:
            row = await self._locked(session, number)
            self._ensure_open(row)
            now = self._now()
            if status == row.status:
                if note:
                    self._append(session, row, now, "note", actor, note)
                return self._record(row)
            row.status = status
            row.updated_at = now
            if row.submitted_at is None:  # it reached the police, whoever moved it
                row.submitted_at = now
            if status in FINAL_STATUSES:
                row.closed_at = now
            self._append(session, row, now, "status", actor, note)
        return self._record(row)

    async def cancel(
        self, number: str, channel: str, sender_id: str, reason: str
    ) -> IncidentRecord:
        """The reporter withdraws their own report while it is still open; reason sealed.

        If the report was handed off, the system holding it is told in the same transaction
        (the reason stays here: it may name people)."""
        async with self._db.session() as session:
            row = await self._locked(session, number)
            self._ensure_reporter(row, channel, sender_id)
            self._ensure_open(row)
            now = self._now()
            row.status = CANCELLED
            row.updated_at = row.closed_at = now
            holder = await outbox.active_target(session, row.id)
            if holder is not None:
                await self._hand_off(session, row, outbox.CANCEL, now, holder)
            self._append(session, row, now, "cancelled", "citizen", reason.strip() or None)
        return self._record(row)

    async def handoff_delivered(
        self,
        outbox_id: int,
        *,
        external_ref: str | None = None,
        status: str | None = None,
        note: str | None = None,
        attempt: outbox.Attempt | None = None,
        actor: str = "handoff",
    ) -> bool:
        """A relay delivered outbox row `outbox_id`: mark it sent and move the incident on, in
        one transaction, so the timeline never says "transferred" for an unsent row or the
        other way round. `status` applies only to an incident still `received` (a call-taker
        or the citizen may have moved it since); otherwise just `note` is recorded.
        False, and nothing written but the attempt, if the row was already marked sent.
        """
        if status is not None:
            _check_choice("status", status, STATUS_LABELS)
        async with self._db.session() as session:
            now = self._now()
            # Incident first, then its outbox row: the order `update`/`cancel` lock them in,
            # so the two never wait on each other (PostgreSQL would abort one of them).
            incident_id = select(models.OutboxMessage.incident_id).where(
                models.OutboxMessage.id == outbox_id
            )
            query = select(models.Incident).where(
                models.Incident.id == incident_id.scalar_subquery()
            )
            row = (await session.execute(query.with_for_update())).scalar_one()
            first = await outbox.mark_sent_in(
                session, outbox_id, external_ref=external_ref, now=now, attempt=attempt
            )
            if not first:
                return False
            if status is not None and row.status == RECEIVED and status != RECEIVED:
                row.status = status
                row.updated_at = now
                self._append(session, row, now, "status", actor, note)
            elif note:
                self._append(session, row, now, "note", actor, note)
        return True

    async def add_note(self, number: str, note: str, *, actor: str) -> IncidentEvent:
        """A remark on the timeline (also after closure: follow-ups happen); sealed."""
        if not note.strip():
            raise ValueError("empty note")
        async with self._db.session() as session:
            row = await self._locked(session, number)
            event = self._append(session, row, self._now(), "note", actor, note)
            await session.flush()
        return IncidentEvent(
            id=event.id,
            at=as_utc(event.at),
            kind=event.kind,
            status=event.status,
            actor=event.actor,
            note=note,
        )

    # --- reading ---

    async def get(self, number: str) -> IncidentRecord | None:
        query = select(models.Incident).where(models.Incident.number == number)
        async with self._db.reader() as session:
            row = (await session.execute(query)).scalar_one_or_none()
        return None if row is None else self._record(row)

    async def for_reporter(
        self,
        channel: str | Collection[str],
        sender_id: str,
        *,
        include_drafts: bool = False,
        limit: int = 50,
    ) -> list[IncidentRecord]:
        """The reporter's own incidents ("我的报警"): open ones first, newest first; from one
        channel, or several that know the citizen by the same id."""
        incident = models.Incident
        channels = [channel] if isinstance(channel, str) else list(channel)
        query = select(incident).where(
            incident.channel.in_(channels), incident.sender_id == sender_id
        )
        if not include_drafts:
            query = query.where(incident.status != DRAFT)
        finished = case((incident.status.in_(FINAL_STATUSES), 1), else_=0)
        query = query.order_by(finished, incident.created_at.desc(), incident.id.desc())
        async with self._db.reader() as session:
            rows = (await session.execute(query.limit(limit))).scalars().all()
        return [self._record(row) for row in rows]

    async def open_draft_for(self, channel: str, sender_id: str) -> IncidentRecord | None:
        """The reporter's newest draft, to pick the report up again after a restart."""
        incident = models.Incident
        query = (
            select(incident)
            .where(
                incident.channel == channel,
                incident.sender_id == sender_id,
                incident.status == DRAFT,
            )
            .order_by(incident.created_at.desc(), incident.id.desc())
            .limit(1)
        )
        async with self._db.reader() as session:
            row = (await session.execute(query)).scalar_one_or_none()
        return None if row is None else self._record(row)

    async def timeline(self, number: str) -> list[IncidentEvent]:
        """Everything that happened to an incident, oldest first; [] if there is no such one."""
        event = models.IncidentEvent
        query = (
            select(event)
            .join(models.Incident, event.incident_id == models.Incident.id)
            .where(models.Incident.number == number)
            .order_by(event.id)
        )
        async with self._db.reader() as session:
            rows = (await session.execute(query)).scalars().all()
        return [
            IncidentEvent(
                id=row.id,
                at=as_utc(row.at),
                kind=row.kind,
                status=row.status,
                actor=row.actor,
                note=self._open_note(number, row.note_sealed),
            )
            for row in rows
        ]

    async def queue(self, limit: int = 100) -> list[IncidentRecord]:
        """The call-takers' worklist: submitted and not finished, most urgent, then oldest."""
        incident = models.Incident
        urgency_rank = case(
            {urgency: rank for rank, urgency in enumerate(URGENCIES)},
            value=incident.urgency,
            else_=len(URGENCIES),
        )
        query = (
            select(incident)
            .where(incident.status.not_in([DRAFT, *FINAL_STATUSES]))
            .order_by(urgency_rank, incident.created_at, incident.id)
            .limit(limit)
        )
        async with self._db.reader() as session:
            rows = (await session.execute(query)).scalars().all()
        return [self._record(row) for row in rows]

    # --- attachments ---

    async def add_attachment(
        self,
        channel: str,
        sender_id: str,
        *,
        kind: str,
        mime: str,
        data: bytes,
        incident_number: str | None = None,
    ) -> int:
        """Keep an upload (sealed), linked to the sender's open incident if one is named.

        The same bytes sent twice for the same incident (a channel retry) are kept once.
        Raises `AttachmentRejected`, or `IncidentNotFound` / `IncidentClosed`.
        """
        mime = check_attachment(kind, mime, data)
        digest = hashlib.sha256(data).hexdigest()
        # Sealing 25 MB takes a while: do it before taking the (SQLite) write lock.
        sealed = self._cipher.seal_bytes(data, f"attachments.content:{digest}")
        attachment = models.Attachment
        async with self._db.session() as session:
            incident = None
            if incident_number is not None:
                incident = await self._locked(session, incident_number)
                self._ensure_reporter(incident, channel, sender_id)
                self._ensure_open(incident)
            linked = (
                attachment.incident_id.is_(None)
                if incident is None
                else attachment.incident_id == incident.id
            )
            duplicate = select(attachment.id).where(
                attachment.channel == channel,
                attachment.sender_id == sender_id,
                attachment.sha256 == digest,
                linked,
            )
            found = (await session.execute(duplicate.limit(1))).scalar_one_or_none()
            if found is not None:
                return found
            now = self._now()
            row = attachment(
                incident_id=None if incident is None else incident.id,
                channel=channel,
                sender_id=sender_id,
                kind=kind,
                mime=mime,
                size=len(data),
                sha256=digest,
                content_sealed=sealed,
                created_at=now,
            )
            session.add(row)
            await session.flush()
            if incident is not None:
                incident.updated_at = now
                self._append(session, incident, now, "attachment", "citizen", f"{kind} {mime}")
            return row.id

    async def link_attachments(
        self,
        channel: str,
        sender_id: str,
        number: str,
        *,
        max_age: timedelta | None = timedelta(hours=24),
    ) -> int:
        """Attach the sender's loose uploads to their incident; returns how many.

        Uploads older than `max_age` are left alone: a photo from an abandoned chat last
        month is not evidence for today's report.
        """
        attachment = models.Attachment
        async with self._db.session() as session:
            row = await self._locked(session, number)
            self._ensure_reporter(row, channel, sender_id)
            self._ensure_open(row)
            now = self._now()
            statement = update(attachment).where(
                attachment.channel == channel,
                attachment.sender_id == sender_id,
                attachment.incident_id.is_(None),
            )
            if max_age is not None:
                statement = statement.where(attachment.created_at >= now - max_age)
            result = await session.execute(statement.values(incident_id=row.id))
            count = result.rowcount or 0
            if count:
                row.updated_at = now
                self._append(session, row, now, "attachment", "citizen", f"linked {count}")
        return count

    async def attachment_meta(self, incident_number: str) -> list[AttachmentMeta]:
        """What is attached to an incident, without the (large, sealed) content."""
        attachment = models.Attachment
        query = (
            select(
                attachment.id,
                attachment.kind,
                attachment.mime,
                attachment.size,
                attachment.sha256,
                attachment.created_at,
            )
            .join(models.Incident, attachment.incident_id == models.Incident.id)
            .where(models.Incident.number == incident_number)
            .order_by(attachment.id)
        )
        async with self._db.reader() as session:
            rows = (await session.execute(query)).all()
        return [_attachment_meta(row) for row in rows]

    async def read_attachment(self, attachment_id: int) -> tuple[AttachmentMeta, bytes] | None:
        """An attachment's bytes, opened; who may see them is for the caller to decide."""
        query = select(models.Attachment).where(models.Attachment.id == attachment_id)
        async with self._db.reader() as session:
            row = (await session.execute(query)).scalar_one_or_none()
        if row is None:
            return None
        data = self._cipher.open_bytes(row.content_sealed, f"attachments.content:{row.sha256}")
        return _attachment_meta(row), data
