"""Mediation cases and the mediators asked to take them (`MediationDesk`).

The rules (who to ask, when an offer times out, when to escalate) live in
`routing.handoff.mediation`; this module only records what was decided, with conditional
updates so that several workers running the supervisor at once cannot both expire the same
offer, escalate twice or send one SMS twice: each change says which state it starts from and
reports whether it won.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from store import models
from store.db import Database
from store.models import as_utc, utcnow

ON_DUTY, BOOKING = "on_duty", "booking"
MODES = (ON_DUTY, BOOKING)

# Case states. open: looking for or waiting on a mediator; waiting: nobody took it this
# round, the next one starts at `retry_at`; exhausted: nobody took it in the last round
# either, a person must act (escalated).
CASE_OPEN, CASE_ACCEPTED, CASE_ON_SITE = "open", "accepted", "on_site"
CASE_WAITING, CASE_EXHAUSTED, CASE_CANCELLED = "waiting", "exhausted", "cancelled"
ACTIVE_CASE_STATES = (CASE_OPEN, CASE_ACCEPTED, CASE_WAITING)
CASE_STATES = (CASE_OPEN, CASE_ACCEPTED, CASE_ON_SITE, CASE_WAITING, CASE_EXHAUSTED, CASE_CANCELLED)
CASE_STATE_LABELS = {
    CASE_OPEN: "待接单",
    CASE_ACCEPTED: "已接单",
    CASE_ON_SITE: "已到场/已预约",
    CASE_WAITING: "无人接单，待下一工作日重新联系",
    CASE_EXHAUSTED: "两轮无人接单，需人工处理",
    CASE_CANCELLED: "已撤销/已转其他渠道",
}

# Assignment states.
OFFERED, ACCEPTED, DECLINED, EXPIRED = "offered", "accepted", "declined", "expired"
ON_SITE, WITHDRAWN = "on_site", "cancelled"
LIVE_ASSIGNMENT_STATES = (OFFERED, ACCEPTED)
SMS_SENDING = "sending"


@dataclass(frozen=True)
class MediationCaseView:
    id: int
    incident_id: int
    number: str
    handoff_key: str
    mode: str
    district: str | None
    state: str
    received_at: datetime
    rota_at: datetime
    sla_due_at: datetime | None
    booking_due_at: datetime | None
    escalated_at: datetime | None
    escalation: str | None
    round: int = 1
    retry_at: datetime | None = None


@dataclass(frozen=True)
class AssignmentView:
    id: int
    case_id: int
    mediator_id: str
    district: str
    reach: str
    state: str
    offered_at: datetime
    answer_due_at: datetime
    answered_at: datetime | None
    on_site_at: datetime | None
    sms_ref: str | None
    sms_sent_at: datetime | None
    round: int = 1

    @property
    def live(self) -> bool:
        return self.state in LIVE_ASSIGNMENT_STATES


def _case(row: models.MediationCase, number: str) -> MediationCaseView:
    return MediationCaseView(
        id=row.id,
        incident_id=row.incident_id,
        number=number,
        handoff_key=row.handoff_key,
        mode=row.mode,
        district=row.district,
        state=row.state,
        received_at=as_utc(row.received_at),  # type: ignore[arg-type]
        rota_at=as_utc(row.rota_at),  # type: ignore[arg-type]
        sla_due_at=as_utc(row.sla_due_at),
        booking_due_at=as_utc(row.booking_due_at),
        escalated_at=as_utc(row.escalated_at),
        escalation=row.escalation,
        round=row.round or 1,
        retry_at=as_utc(row.retry_at),
    )


def _assignment(row: models.MediationAssignment) -> AssignmentView:
    return AssignmentView(
        id=row.id,
        case_id=row.case_id,
        mediator_id=row.mediator_id,
        district=row.district,
        reach=row.reach,
        state=row.state,
        offered_at=as_utc(row.offered_at),  # type: ignore[arg-type]
        answer_due_at=as_utc(row.answer_due_at),  # type: ignore[arg-type]
        answered_at=as_utc(row.answered_at),
        on_site_at=as_utc(row.on_site_at),
        sms_ref=row.sms_ref,
        sms_sent_at=as_utc(row.sms_sent_at),
        round=row.round or 1,
    )


class MediationDesk:
    """Cases and assignments; hands out views, never ORM rows. `now` is injectable."""

    def __init__(self, db: Database, now: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = now

    def _now(self) -> datetime:
        moment = self._clock()
        if moment.tzinfo is None:
            raise ValueError("the clock must give timezone-aware datetimes")
        return moment.astimezone(timezone.utc)

    @staticmethod
    def _case_query():  # noqa: ANN205 - a SQLAlchemy select
        return select(models.MediationCase, models.Incident.number).join(
            models.Incident, models.Incident.id == models.MediationCase.incident_id
        )

    # --- cases ---

    async def open_case(
        self,
        *,
        handoff_key: str,
        number: str,
        mode: str,
        district: str | None,
        received_at: datetime,
        rota_at: datetime,
        sla_due_at: datetime | None = None,
        booking_due_at: datetime | None = None,
    ) -> tuple[MediationCaseView, bool]:
        """The case for a mediation handoff, created on its first delivery; `True` when this
        call created it. Idempotent on `handoff_key`: a redelivery finds the same case."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        existing = await self.case_by_key(handoff_key)
        if existing is not None:
            return existing, False
        now = self._now()
        try:
            async with self._db.session() as session:
                incident_id = (
                    await session.execute(
                        select(models.Incident.id).where(models.Incident.number == number)
                    )
                ).scalar_one_or_none()
                if incident_id is None:
                    raise LookupError(f"no incident {number}")
                session.add(
                    models.MediationCase(
                        incident_id=incident_id,
                        handoff_key=handoff_key,
                        mode=mode,
                        district=district,
                        state=CASE_OPEN,
                        received_at=received_at.astimezone(timezone.utc),
                        rota_at=rota_at.astimezone(timezone.utc),
                        sla_due_at=None
                        if sla_due_at is None
                        else sla_due_at.astimezone(timezone.utc),
                        booking_due_at=(
                            None
                            if booking_due_at is None
                            else booking_due_at.astimezone(timezone.utc)
                        ),
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:  # another worker delivered the same key at the same moment
            pass
        else:
            created = await self.case_by_key(handoff_key)
            assert created is not None
            return created, True
        found = await self.case_by_key(handoff_key)
        assert found is not None
        return found, False

    async def case_by_key(self, handoff_key: str) -> MediationCaseView | None:
        query = self._case_query().where(models.MediationCase.handoff_key == handoff_key)
        async with self._db.reader() as session:
            found = (await session.execute(query)).first()
        return None if found is None else _case(*found)

    async def case(self, case_id: int) -> MediationCaseView | None:
        query = self._case_query().where(models.MediationCase.id == case_id)
        async with self._db.reader() as session:
            found = (await session.execute(query)).first()
        return None if found is None else _case(*found)

    async def cases_for(self, number: str) -> list[MediationCaseView]:
        query = (
            self._case_query()
            .where(models.Incident.number == number)
            .order_by(models.MediationCase.id)
        )
        async with self._db.reader() as session:
            return [_case(*found) for found in (await session.execute(query)).all()]

    async def active_cases(
        self, limit: int = 500
    ) -> list[tuple[MediationCaseView, list[AssignmentView]]]:
        """Cases a supervisor still watches (open or accepted), oldest first, with their
        assignments in the order they were offered."""
        query = (
            self._case_query()
            .where(models.MediationCase.state.in_(ACTIVE_CASE_STATES))
            .order_by(models.MediationCase.id)
            .limit(limit)
        )
        async with self._db.reader() as session:
            cases = [_case(*found) for found in (await session.execute(query)).all()]
            if not cases:
                return []
            rows = (
                await session.execute(
                    select(models.MediationAssignment)
                    .where(models.MediationAssignment.case_id.in_([c.id for c in cases]))
                    .order_by(models.MediationAssignment.id)
                )
            ).scalars()
            by_case: dict[int, list[AssignmentView]] = {c.id: [] for c in cases}
            for row in rows:
                by_case[row.case_id].append(_assignment(row))
        return [(case, by_case[case.id]) for case in cases]

    async def _move_case(self, case_id: int, to: str, *, from_: tuple[str, ...]) -> bool:
        table = models.MediationCase
        async with self._db.session() as session:
            result = await session.execute(
                update(table)
                .where(table.id == case_id, table.state.in_(from_))
                .values(state=to, updated_at=self._now())
            )
        return result.rowcount == 1

    async def wait_for_retry(self, case_id: int, round_: int, retry_at: datetime) -> bool:
        """Nobody took round `round_`: the case waits for the next one at `retry_at` (True
        when this call moved it; another worker may have)."""
        table = models.MediationCase
        async with self._db.session() as session:
            result = await session.execute(
                update(table)
                .where(table.id == case_id, table.state == CASE_OPEN, table.round == round_)
                .values(
                    state=CASE_WAITING,
                    retry_at=retry_at.astimezone(timezone.utc),
                    updated_at=self._now(),
                )
            )
        return result.rowcount == 1

    async def retry(self, case_id: int) -> bool:
        """Start the next round: open again, everyone on the roster may be asked again."""
        table = models.MediationCase
        async with self._db.session() as session:
            result = await session.execute(
                update(table)
                .where(table.id == case_id, table.state == CASE_WAITING)
                .values(
                    state=CASE_OPEN, round=table.round + 1, retry_at=None, updated_at=self._now()
                )
            )
        return result.rowcount == 1

    async def exhaust(self, case_id: int, reason: str) -> bool:
        """Nobody took the last round either: the case waits for a person, escalated for
        `reason` whatever was escalated before (True when this call moved it)."""
        table = models.MediationCase
        now = self._now()
        async with self._db.session() as session:
            result = await session.execute(
                update(table)
                .where(table.id == case_id, table.state == CASE_OPEN)
                .values(
                    state=CASE_EXHAUSTED,
                    escalated_at=now,  # the latest escalation, what operators act on
                    escalation=reason[:24],
                    updated_at=now,
                )
            )
        return result.rowcount == 1

    async def escalate(self, case_id: int, reason: str) -> bool:
        """Record the case's escalation; only the first one counts (True when this call won)."""
        table = models.MediationCase
        now = self._now()
        async with self._db.session() as session:
            result = await session.execute(
                update(table)
                .where(table.id == case_id, table.escalated_at.is_(None))
                .values(escalated_at=now, escalation=reason[:24], updated_at=now)
            )
        return result.rowcount == 1

    async def list_cases(
        self, states: tuple[str, ...] = (), limit: int = 50
    ) -> list[tuple[MediationCaseView, AssignmentView | None]]:
        """Cases for operators, newest first, with each one's latest assignment (who has it
        or was asked last); `states` narrows them."""
        query = self._case_query().order_by(models.MediationCase.id.desc()).limit(limit)
        if states:
            query = query.where(models.MediationCase.state.in_(states))
        table = models.MediationAssignment
        async with self._db.reader() as session:
            cases = [_case(*found) for found in (await session.execute(query)).all()]
            latest: dict[int, AssignmentView] = {}
            if cases:
                rows = await session.execute(
                    select(table).where(table.case_id.in_([c.id for c in cases])).order_by(table.id)
                )
                latest = {row.case_id: _assignment(row) for row in rows.scalars()}
        return [(case, latest.get(case.id)) for case in cases]

    async def counts(self) -> dict[str, int]:
        """Cases by state (every state, zeros included), for /metrics and the CLI."""
        table = models.MediationCase
        async with self._db.reader() as session:
            rows = await session.execute(select(table.state, func.count()).group_by(table.state))
            found = dict(rows.all())
        return {state: int(found.get(state, 0)) for state in CASE_STATES}

    async def cancel(self, case_id: int) -> list[AssignmentView]:
        """The reporter withdrew: close the case; returns the assignments that were live
        (their mediators should be told)."""
        now = self._now()
        async with self._db.session() as session:
            await session.execute(
                update(models.MediationCase)
                .where(
                    models.MediationCase.id == case_id,
                    models.MediationCase.state != CASE_CANCELLED,
                )
                .values(state=CASE_CANCELLED, updated_at=now)
            )
            table = models.MediationAssignment
            live = (
                (
                    await session.execute(
                        select(table).where(
                            table.case_id == case_id, table.state.in_(LIVE_ASSIGNMENT_STATES)
                        )
                    )
                )
                .scalars()
                .all()
            )
            views = [_assignment(row) for row in live]
            for row in live:
                row.state = WITHDRAWN
                row.answered_at = row.answered_at or now
        return views

    # --- assignments ---

    async def offer(
        self,
        case_id: int,
        *,
        mediator_id: str,
        district: str,
        reach: str,
        answer_due_at: datetime,
    ) -> AssignmentView | None:
        """Ask a mediator to take the case; None if they were already asked, someone else's
        offer is live (another worker got there first) or the case is no longer open."""
        now = self._now()
        try:
            async with self._db.session() as session:
                # The case row lock queues concurrent offers; the second one then sees the
                # first one's live offer and stands back, so a case has one live offer.
                state, round_ = (
                    await session.execute(
                        select(models.MediationCase.state, models.MediationCase.round)
                        .where(models.MediationCase.id == case_id)
                        .with_for_update()
                    )
                ).one()
                if state != CASE_OPEN:
                    return None
                table = models.MediationAssignment
                live = (
                    await session.execute(
                        select(table.id)
                        .where(table.case_id == case_id, table.state.in_(LIVE_ASSIGNMENT_STATES))
                        .limit(1)
                    )
                ).first()
                if live is not None:
                    return None
                row = models.MediationAssignment(
                    case_id=case_id,
                    mediator_id=mediator_id,
                    round=round_,
                    district=district,
                    reach=reach,
                    state=OFFERED,
                    offered_at=now,
                    answer_due_at=answer_due_at.astimezone(timezone.utc),
                )
                session.add(row)
                await session.flush()
                return _assignment(row)
        except IntegrityError:
            return None

    async def assignment(self, assignment_id: int) -> AssignmentView | None:
        async with self._db.reader() as session:
            row = await session.get(models.MediationAssignment, assignment_id)
            return None if row is None else _assignment(row)

    async def assignments(self, case_id: int) -> list[AssignmentView]:
        """A case's assignments in the order they were offered."""
        table = models.MediationAssignment
        query = select(table).where(table.case_id == case_id).order_by(table.id)
        async with self._db.reader() as session:
            return [_assignment(row) for row in (await session.execute(query)).scalars()]

    async def claim_sms(self, assignment_id: int, stale_before: datetime) -> bool:
        """Take the right to send this offer's SMS (False: sent, or another worker sends).
        A claim taken before `stale_before` and never finished belongs to a worker that died
        mid-send: it may be taken over (the resend carries the same idempotency key).
        `sms_sent_at` holds the claim's time until the send is done."""
        table = models.MediationAssignment
        stale = and_(table.sms_ref == SMS_SENDING, table.sms_sent_at < stale_before)
        async with self._db.session() as session:
            result = await session.execute(
                update(table)
                .where(table.id == assignment_id, or_(table.sms_ref.is_(None), stale))
                .values(sms_ref=SMS_SENDING, sms_sent_at=self._now())
            )
        return result.rowcount == 1

    async def sms_done(self, assignment_id: int, ref: str | None) -> None:
        """The SMS went out (`ref` its gateway id), or failed (None: free it for a retry)."""
        table = models.MediationAssignment
        values = (
            {"sms_ref": ref[:64], "sms_sent_at": self._now()}
            if ref is not None
            else {"sms_ref": None, "sms_sent_at": None}
        )
        async with self._db.session() as session:
            await session.execute(update(table).where(table.id == assignment_id).values(**values))

    async def _move(self, assignment_id: int, to: str, *, from_: str, **values: object) -> bool:
        table = models.MediationAssignment
        async with self._db.session() as session:
            result = await session.execute(
                update(table)
                .where(table.id == assignment_id, table.state == from_)
                .values(state=to, **values)
            )
        return result.rowcount == 1

    async def expire(self, assignment_id: int) -> bool:
        """An offer nobody answered in time; True when this call expired it."""
        return await self._move(assignment_id, EXPIRED, from_=OFFERED, answered_at=self._now())

    async def decline(self, assignment_id: int) -> bool:
        return await self._move(assignment_id, DECLINED, from_=OFFERED, answered_at=self._now())

    async def accept(self, assignment_id: int) -> bool:
        """The mediator takes the case: it stops looking for anyone else."""
        found = await self.assignment(assignment_id)
        if found is None:
            return False
        if not await self._move(assignment_id, ACCEPTED, from_=OFFERED, answered_at=self._now()):
            return False
        await self._move_case(found.case_id, CASE_ACCEPTED, from_=(CASE_OPEN,))
        return True

    async def arrive(self, assignment_id: int) -> bool:
        """The mediator is on site (or has booked the time with the reporter)."""
        found = await self.assignment(assignment_id)
        if found is None:
            return False
        if not await self._move(assignment_id, ON_SITE, from_=ACCEPTED, on_site_at=self._now()):
            return False
        await self._move_case(found.case_id, CASE_ON_SITE, from_=(CASE_OPEN, CASE_ACCEPTED))
        return True
