"""The transactional outbox: handoffs to other systems, written in the same transaction as
the incident change they report, then delivered by a relay (`routing.handoff.relay`) at least
once, always under the same idempotency key, so the receiver keeps one logical message.

Writers (`IncidentBook`) call `enqueue` inside their own transaction: an incident and its
handoff exist together or not at all. Relays call `Outbox.claim_due`:

* PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED` picks due rows that no other worker is
  claiming, and the same transaction marks them `sending` with a lease, so any number of
  workers share the rows without taking the same one.
* SQLite: a single `UPDATE … WHERE id IN (SELECT … LIMIT n)` statement claims the rows.
  SQLite holds its one write lock for the whole statement, so two processes cannot claim the
  same row; inside a process `Database.session()` queues the writers anyway.

A row whose lease runs out (its worker died mid-send) is due again and is sent again under
its key. Per incident and target, rows go out in order: an `update` or a `cancel` waits
until everything queued before it for that target was sent (a dead row holds the rest back
until an operator retries it, rather than cancelling something the receiver never got).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from store import models
from store.crypto import DecryptionError, PiiCipher
from store.db import Database
from store.models import as_utc, utcnow

# Targets: where a handoff goes.
CAD110 = "cad110"
WORKORDER_12345 = "workorder12345"
MEDIATION = "mediation"
SMS = "sms"
TARGETS = (CAD110, WORKORDER_12345, MEDIATION, SMS)

# Kinds: what the receiver is asked to do.
CREATE, UPDATE, CANCEL = "create", "update", "cancel"
KINDS = (CREATE, UPDATE, CANCEL)

PENDING, SENDING, SENT, DEAD = "pending", "sending", "sent", "dead"
STATUSES = (PENDING, SENDING, SENT, DEAD)

ERROR_CHARS = 300
_CLAIM_CHARS = 64
_TOKEN_BYTES = 6  # 12 hex characters after the worker id


@dataclass(frozen=True)
class OutboxItem:
    """An outbox row as the relay and the operator see it; `payload` only on a claim."""

    id: int
    incident_id: int
    incident_number: str
    target: str
    kind: str
    idempotency_key: str
    status: str
    attempts: int
    next_attempt_at: datetime
    claimed_by: str | None
    claimed_until: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    external_ref: str | None
    payload: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    # Set on a claim whose payload does not open (key rotated, corrupt): dead, not a crash.
    payload_error: str | None = None


@dataclass(frozen=True)
class Attempt:
    """One delivery try: kept per row for operators and metrics, never personal data."""

    at: datetime
    ok: bool
    duration_ms: int = 0
    status_code: int | None = None
    error: str | None = None
    worker: str | None = None


def clip_error(error: str | None) -> str | None:
    return None if error is None else error[:ERROR_CHARS]


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


def _payload_context(key: str) -> str:
    """Binds a sealed payload to its row: a payload copied onto another row does not open."""
    return f"outbox.payload:{key}"


def seal_payload(cipher: PiiCipher, key: str, payload: Mapping[str, Any]) -> bytes:
    text = json.dumps(dict(payload), ensure_ascii=False, sort_keys=True, default=str)
    return cipher.seal(text, _payload_context(key))


def open_payload(cipher: PiiCipher, key: str, sealed: bytes) -> dict[str, Any]:
    return json.loads(cipher.open(sealed, _payload_context(key)))


def _check(name: str, value: str, allowed: Iterable[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}")


# --- in the writer's transaction --------------------------------------------------------


async def enqueue(
    session: AsyncSession,
    cipher: PiiCipher,
    *,
    incident_id: int,
    number: str,
    target: str,
    kind: str,
    payload: Mapping[str, Any],
    now: datetime,
) -> str:
    """Queue a handoff in the caller's transaction and return its idempotency key.

    The key is `<number>:<target>:<kind>:<n>`, n counting that kind for the incident and
    target, so it is the same however often the row is sent. The caller holds the incident
    row (locked, or new), so counting is safe. An `update` that was never tried yet takes
    the newest payload instead of queuing another one: the receiver wants the latest state.
    """
    _check("target", target, TARGETS)
    _check("kind", kind, KINDS)
    row = models.OutboxMessage
    if kind == UPDATE:
        latest = (
            await session.execute(
                select(row.id, row.kind, row.status, row.attempts, row.idempotency_key)
                .where(row.incident_id == incident_id, row.target == target)
                .order_by(row.id.desc())
                .limit(1)
            )
        ).one_or_none()
        if latest is not None and (latest.kind, latest.status, latest.attempts) == (
            UPDATE,
            PENDING,
            0,
        ):
            # A relay may be claiming it right now: only an untouched row takes the payload.
            replaced = await session.execute(
                update(row)
                .where(row.id == latest.id, row.status == PENDING, row.attempts == 0)
                .values(payload_sealed=seal_payload(cipher, latest.idempotency_key, payload))
                .execution_options(synchronize_session=False)
            )
            if replaced.rowcount:
                return latest.idempotency_key
    count = (
        await session.execute(
            select(func.count()).where(
                row.incident_id == incident_id, row.target == target, row.kind == kind
            )
        )
    ).scalar_one()
    key = f"{number}:{target}:{kind}:{count + 1}"
    session.add(
        row(
            incident_id=incident_id,
            target=target,
            idempotency_key=key,
            kind=kind,
            payload_sealed=seal_payload(cipher, key, payload),
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    await session.flush()  # a clashing key fails here, inside the caller's transaction
    return key


async def active_target(session: AsyncSession, incident_id: int) -> str | None:
    """The target that holds the incident now: created there and not cancelled since."""
    row = models.OutboxMessage
    rows = await session.execute(
        select(row.target, row.kind).where(row.incident_id == incident_id).order_by(row.id)
    )
    last_kind: dict[str, str] = {}
    for target, kind in rows:
        last_kind.pop(target, None)  # keep insertion order = order of the latest row
        last_kind[target] = kind
    holding = [target for target, kind in last_kind.items() if kind != CANCEL]
    return holding[-1] if holding else None


def _attempt_row(outbox_id: int, attempt: Attempt) -> models.OutboxAttempt:
    return models.OutboxAttempt(
        outbox_id=outbox_id,
        at=attempt.at,
        worker=None if attempt.worker is None else attempt.worker[:_CLAIM_CHARS],
        ok=attempt.ok,
        status_code=attempt.status_code,
        error=clip_error(attempt.error),
        duration_ms=max(0, int(attempt.duration_ms)),
    )


async def mark_sent_in(
    session: AsyncSession,
    outbox_id: int,
    *,
    external_ref: str | None,
    now: datetime,
    attempt: Attempt | None = None,
) -> bool:
    """Mark a row delivered in the caller's transaction; False if it already was.

    A delivery is a fact whoever made it, so no claim is checked: a worker whose lease ran
    out while the receiver was answering still records the success. Only the first one
    counts (the caller applies the incident's side of it only then).
    """
    row = models.OutboxMessage
    result = await session.execute(
        update(row)
        .where(row.id == outbox_id, row.status != SENT)
        .values(
            status=SENT,
            sent_at=now,
            external_ref=None if external_ref is None else str(external_ref)[:64],
            claimed_by=None,
            claimed_until=None,
            last_error=None,
        )
        .execution_options(synchronize_session=False)
    )
    if attempt is not None:
        session.add(_attempt_row(outbox_id, attempt))
    return bool(result.rowcount)


# --- the relay's and the operator's side ------------------------------------------------


class Outbox:
    """Claims, outcomes and operator views of the outbox; hands out `OutboxItem`s.

    `now` is injectable, like the relay's clock, so tests move time instead of waiting.
    """

    def __init__(
        self, db: Database, cipher: PiiCipher, now: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._clock = now

    def _now(self, moment: datetime | None = None) -> datetime:
        moment = self._clock() if moment is None else moment
        if moment.tzinfo is None:
            raise ValueError("the clock must give timezone-aware datetimes")
        return moment.astimezone(timezone.utc)

    def _item(self, row: models.OutboxMessage, number: str, *, opened: bool) -> OutboxItem:
        payload, payload_error = None, None
        if opened:
            try:
                payload = open_payload(self._cipher, row.idempotency_key, row.payload_sealed)
            except (DecryptionError, ValueError) as exc:  # one bad row must not stop the rest
                payload_error = f"sealed payload unreadable: {type(exc).__name__}"
        return OutboxItem(
            id=row.id,
            incident_id=row.incident_id,
            incident_number=number,
            target=row.target,
            kind=row.kind,
            idempotency_key=row.idempotency_key,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=as_utc(row.next_attempt_at),
            claimed_by=row.claimed_by,
            claimed_until=_utc_or_none(row.claimed_until),
            last_error=row.last_error,
            created_at=as_utc(row.created_at),
            sent_at=_utc_or_none(row.sent_at),
            external_ref=row.external_ref,
            payload=payload,
            payload_error=payload_error,
        )

    async def claim_due(
        self,
        worker_id: str,
        limit: int = 10,
        now: datetime | None = None,
        lease_s: float = 60.0,
        targets: Iterable[str] | None = None,
    ) -> list[OutboxItem]:
        """Take up to `limit` due rows for `worker_id` and lease them for `lease_s` seconds.

        Due: pending and past `next_attempt_at`, or sending with an expired lease. Each claim
        counts as an attempt, so a row that crashes its worker every time still reaches the
        relay's limit. `targets` restricts the claim to those this relay can deliver.
        """
        if limit <= 0:
            return []
        now = self._now(now)
        claim = (
            f"{worker_id[: _CLAIM_CHARS - 2 * _TOKEN_BYTES - 1]}#{secrets.token_hex(_TOKEN_BYTES)}"
        )
        candidate = aliased(models.OutboxMessage, name="candidate")
        earlier = aliased(models.OutboxMessage, name="earlier")
        held_back = exists(
            select(earlier.id).where(
                earlier.incident_id == candidate.incident_id,
                earlier.target == candidate.target,
                earlier.id < candidate.id,
                earlier.status != SENT,
            )
        )
        due = (
            select(candidate.id)
            .where(
                or_(
                    and_(candidate.status == PENDING, candidate.next_attempt_at <= now),
                    and_(candidate.status == SENDING, candidate.claimed_until < now),
                ),
                ~held_back,
            )
            .order_by(candidate.next_attempt_at, candidate.id)
            .limit(limit)
        )
        if targets is not None:
            due = due.where(candidate.target.in_(list(targets)))
        row = models.OutboxMessage
        take = {
            "status": SENDING,
            "claimed_by": claim,
            "claimed_until": now + timedelta(seconds=lease_s),
            "attempts": row.attempts + 1,
        }
        if self._db.is_sqlite:
            # Idle relays poll every second: look before taking the one write lock.
            async with self._db.reader() as session:
                if (await session.execute(due.limit(1))).first() is None:
                    return []
        async with self._db.session() as session:
            if self._db.is_sqlite:
                await session.execute(
                    update(row)
                    .where(row.id.in_(due.scalar_subquery()))
                    .values(**take)
                    .execution_options(synchronize_session=False)
                )
            else:
                locked = due.with_for_update(skip_locked=True, of=candidate)
                ids = (await session.execute(locked)).scalars().all()
                if not ids:
                    return []
                await session.execute(
                    update(row)
                    .where(row.id.in_(ids))
                    .values(**take)
                    .execution_options(synchronize_session=False)
                )
            claimed = await session.execute(
                select(row, models.Incident.number)
                .join(models.Incident, models.Incident.id == row.incident_id)
                .where(row.claimed_by == claim)
                .order_by(row.next_attempt_at, row.id)
                .execution_options(populate_existing=True)
            )
            return [self._item(found, number, opened=True) for found, number in claimed]

    async def record_attempt(self, item: OutboxItem, attempt: Attempt) -> None:
        """Keep an attempt on its own, e.g. one whose outcome the row no longer takes."""
        async with self._db.session() as session:
            session.add(_attempt_row(item.id, attempt))

    async def mark_sent(
        self,
        item_id: int,
        *,
        external_ref: str | None = None,
        now: datetime | None = None,
        attempt: Attempt | None = None,
    ) -> bool:
        """Delivered; False if it already was (see `mark_sent_in`)."""
        now = self._now(now)
        async with self._db.session() as session:
            return await mark_sent_in(
                session, item_id, external_ref=external_ref, now=now, attempt=attempt
            )

    async def _settle(
        self, item: OutboxItem, values: dict[str, Any], attempt: Attempt | None
    ) -> bool:
        """Apply a failure outcome, but only while `item`'s claim still holds the row:
        a worker that lost its lease must not undo what the next worker did."""
        row = models.OutboxMessage
        async with self._db.session() as session:
            result = await session.execute(
                update(row)
                .where(
                    row.id == item.id,
                    row.status == SENDING,
                    row.claimed_by == item.claimed_by,
                )
                .values(claimed_by=None, claimed_until=None, **values)
                .execution_options(synchronize_session=False)
            )
            if attempt is not None:
                session.add(_attempt_row(item.id, attempt))
            return bool(result.rowcount)

    async def schedule_retry(
        self,
        item: OutboxItem,
        next_at: datetime,
        error: str,
        attempt: Attempt | None = None,
    ) -> bool:
        """Back to pending, due at `next_at`; `error` is ours, never the receiver's text."""
        values = {
            "status": PENDING,
            "next_attempt_at": self._now(next_at),
            "last_error": clip_error(error),
        }
        return await self._settle(item, values, attempt)

    async def mark_dead(self, item: OutboxItem, error: str, attempt: Attempt | None = None) -> bool:
        """Give up until an operator calls `retry`."""
        return await self._settle(item, {"status": DEAD, "last_error": clip_error(error)}, attempt)

    async def retry(self, item_id: int, now: datetime | None = None) -> bool:
        """An operator sends a dead row again: pending at once, its attempt count reset
        (the history stays in `outbox_attempts`). False if the row is not dead."""
        row = models.OutboxMessage
        async with self._db.session() as session:
            result = await session.execute(
                update(row)
                .where(row.id == item_id, row.status == DEAD)
                .values(status=PENDING, attempts=0, next_attempt_at=self._now(now))
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)

    async def get(self, item_id: int) -> OutboxItem | None:
        row = models.OutboxMessage
        query = (
            select(row, models.Incident.number)
            .join(models.Incident, models.Incident.id == row.incident_id)
            .where(row.id == item_id)
        )
        async with self._db.reader() as session:
            found = (await session.execute(query)).one_or_none()
        return None if found is None else self._item(found[0], found[1], opened=False)

    async def list(
        self, status: str | None = None, limit: int = 100, incident_number: str | None = None
    ) -> list[OutboxItem]:
        """Rows for the operator, newest first, without their (sealed) payloads."""
        if status is not None:
            _check("status", status, STATUSES)
        row = models.OutboxMessage
        query = select(row, models.Incident.number).join(
            models.Incident, models.Incident.id == row.incident_id
        )
        if status is not None:
            query = query.where(row.status == status)
        if incident_number is not None:
            query = query.where(models.Incident.number == incident_number)
        query = query.order_by(row.id.desc()).limit(limit)
        async with self._db.reader() as session:
            rows = (await session.execute(query)).all()
        return [self._item(found, number, opened=False) for found, number in rows]

    async def attempts(self, item_id: int) -> list[Attempt]:
        """A row's delivery history, oldest first."""
        attempt = models.OutboxAttempt
        query = select(attempt).where(attempt.outbox_id == item_id).order_by(attempt.id)
        async with self._db.reader() as session:
            rows = (await session.execute(query)).scalars().all()
        return [
            Attempt(
                at=as_utc(found.at),
                ok=bool(found.ok),
                duration_ms=found.duration_ms,
                status_code=found.status_code,
                error=found.error,
                worker=found.worker,
            )
            for found in rows
        ]

    async def counts(self) -> dict[str, int]:
        """Rows per status, every status present: what `/metrics` exports."""
        row = models.OutboxMessage
        query = select(row.status, func.count()).group_by(row.status)
        async with self._db.reader() as session:
            found = dict((await session.execute(query)).all())
        return {status: int(found.get(status, 0)) for status in STATUSES}
