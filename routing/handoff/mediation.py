"""Handing a dispute to the people's mediators: `MediationAdapter` (the outbox target
`mediation`) and `MediationSupervisor` (the periodic task that watches the clocks).

On delivery of a mediation incident, `MediationSchedule.plan()` decides:

* **inside working hours** (on_duty): the district's duty mediator (`Roster.next_candidate`)
  is offered the case and the on-site clock starts (2 hours, `Plan.on_site_by`). The clock
  belongs to the case, not to the mediator: if the first one declines, the next one inherits
  the same deadline, because the citizen is still waiting.
* **outside hours** (booking): the mediator on duty at the next opening gets the push now,
  and a booking task: contact the reporter from the opening on, booked by closing time that
  day (`booking_due_at`).

Both modes text the mediator (the SMS adapter): inside hours too, since an assignment nobody
hears of is no assignment. The text has the case number, district and times and a signed
link (routing.handoff.links), never the report or the reporter.

Offers wait `answer_within` (15 min) for an answer; a booking offer made at night may wait
until 30 minutes after the opening. Declined or unanswered → the next candidate (`tried`
= everyone asked in this round). Nobody left → the case is `waiting` until the next working
day's opening (`MediationSchedule.next_opening`), when a new round asks the roster again
from the top (whoever is on duty that day); nobody in the last round (`rounds`, 2) either →
`exhausted` and escalated (`no_mediator`). The deadline passing while nobody is on site /
booked → escalated (`sla_breach`, `booking_overdue`), also while the case waits. An
escalation is a timeline note (call-takers see it in the console), a log line with ids only
and an `on_escalation(reason)` call (a metric): once per case for a deadline, and once more
when the case is exhausted (a person must act, whatever was escalated before).
`alarmbot mediation list` shows operators the cases, their state and escalations.

`decide()` is the pure part: case + assignments + now → steps. The supervisor runs the steps
against `store.mediation.MediationDesk`, whose conditional updates make several workers safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from routing.adapters.sms import (
    MEDIATION_BOOKING,
    MEDIATION_CANCEL,
    MEDIATION_ON_DUTY,
    MEDIATION_REROUTED,
    SmsDeliveryError,
    SmsGateway,
    sms_key,
)
from routing.handoff.adapters import Delivery, HandoffError
from routing.handoff.links import mediator_url, sign_link
from routing.handoff.messages import HandoffMessage
from routing.mediators import Roster
from routing.notify import CitizenNotifier, notify_quietly
from routing.schedule import MediationSchedule, PlanMode
from store.incidents import CANCELLED, IN_PROGRESS, IncidentBook, IncidentClosed
from store.mediation import (
    ACCEPTED,
    BOOKING,
    CASE_ACCEPTED,
    CASE_ON_SITE,
    CASE_OPEN,
    CASE_WAITING,
    OFFERED,
    ON_DUTY,
    ON_SITE,
    SMS_SENDING,
    AssignmentView,
    MediationCaseView,
    MediationDesk,
)
from store.models import utcnow
from store.outbox import CANCEL, CREATE

logger = logging.getLogger(__name__)

ANSWER_WITHIN = timedelta(minutes=15)
BOOKING_ANSWER_GRACE = timedelta(minutes=30)  # after the opening, for a push made at night
LINK_VALID = timedelta(days=7)
# A text claimed this long ago and never finished: its worker died; another may resend it.
SMS_CLAIM_LEASE = timedelta(minutes=2)
ACTOR = "mediation"

ROUNDS = 2  # passes over the roster before a person must act

# Steps and escalation reasons.
SEND_SMS, EXPIRE, OFFER_NEXT, ESCALATE = "send_sms", "expire", "offer_next", "escalate"
RETRY = "retry"
SLA_BREACH, BOOKING_OVERDUE, NO_MEDIATOR = "sla_breach", "booking_overdue", "no_mediator"
ESCALATION_NOTES = {
    SLA_BREACH: "【升级】调解员未在承诺时限内到场，请接警员跟进（必要时派警）",
    BOOKING_OVERDUE: "【升级】调解员未在时限内与报警人预约，请接警员跟进",
    NO_MEDIATOR: "【升级】暂无可指派的人民调解员（两轮联系均未接单或无人值班），请接警员跟进",
}

EscalationCallback = Callable[[str], object]


@dataclass(frozen=True)
class Step:
    action: str
    assignment_id: int | None = None
    reason: str | None = None


def decide(
    case: MediationCaseView, assignments: Sequence[AssignmentView], now: datetime
) -> list[Step]:
    """What a case needs at `now`, in order: expire unanswered offers, (re)send unsent
    texts, offer the next mediator when nobody is live (or start the next round when a
    waiting case's time has come), escalate a passed deadline."""
    if case.state not in (CASE_OPEN, ACCEPTED, CASE_WAITING):
        return []
    steps: list[Step] = []
    if case.state == CASE_WAITING and case.retry_at is not None and now >= case.retry_at:
        steps.append(Step(RETRY))
    live = 0
    for assignment in assignments:
        if assignment.state == OFFERED and assignment.answer_due_at <= now:
            steps.append(Step(EXPIRE, assignment.id))
        elif assignment.live:
            live += 1
            if text_due(assignment, now):
                steps.append(Step(SEND_SMS, assignment.id))
    if case.state == CASE_OPEN and live == 0:
        steps.append(Step(OFFER_NEXT))
    due = case.sla_due_at if case.mode == ON_DUTY else case.booking_due_at
    if case.escalated_at is None and due is not None and now >= due:
        steps.append(Step(ESCALATE, reason=SLA_BREACH if case.mode == ON_DUTY else BOOKING_OVERDUE))
    return steps


def assigned_to(case: MediationCaseView, assignment: AssignmentView) -> bool:
    """The case is this mediator's now: they accepted it (or are on site / booked) and it
    is still live. Only then may they see the reporter's phone."""
    return assignment.state in (ACCEPTED, ON_SITE) and case.state in (
        CASE_ACCEPTED,
        CASE_ON_SITE,
    )


def text_due(assignment: AssignmentView, now: datetime) -> bool:
    """An offer whose text must (still) go out: never sent, or claimed by a worker that died
    mid-send (`SMS_CLAIM_LEASE` ago); the resend has the same key, so the gateway keeps one."""
    if assignment.state != OFFERED:
        return False
    if assignment.sms_ref is None:
        return True
    claimed_at = assignment.sms_sent_at
    return assignment.sms_ref == SMS_SENDING and (
        claimed_at is None or claimed_at <= now - SMS_CLAIM_LEASE
    )


def _local_text(schedule: MediationSchedule, at: datetime) -> str:
    local = schedule.local(at)
    return f"{local.month}月{local.day}日{local:%H:%M}"


def offer_key(template_id: str, case: MediationCaseView, assignment: AssignmentView) -> str:
    """The SMS idempotency key of a text about one offer: its template, the case's handoff
    key (unique across databases, unlike row ids) and the offer."""
    return sms_key(template_id, case.handoff_key, str(assignment.id))


class MediationDispatcher:
    """Offers, texts and escalations for mediation cases; shared by the adapter and the
    supervisor so both follow the same rules."""

    def __init__(
        self,
        desk: MediationDesk,
        roster: Roster,
        schedule: MediationSchedule,
        sms: SmsGateway,
        *,
        incidents: IncidentBook,
        link_key: bytes,
        public_url: str,
        notifier: CitizenNotifier | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_escalation: EscalationCallback | None = None,
        answer_within: timedelta = ANSWER_WITHIN,
        rounds: int = ROUNDS,
    ) -> None:
        self.desk = desk
        self.roster = roster
        self.schedule = schedule
        self.sms = sms
        self.incidents = incidents
        self.link_key = link_key
        self.public_url = public_url
        self.notifier = notifier
        self.clock = clock
        self.on_escalation = on_escalation
        self.answer_within = answer_within
        self.rounds = rounds

    def answer_due(self, case: MediationCaseView, now: datetime) -> datetime:
        due = now + self.answer_within
        if case.mode == BOOKING:
            due = max(due, case.rota_at + BOOKING_ANSWER_GRACE)
        return due

    async def offer_next(
        self, case: MediationCaseView, assignments: Sequence[AssignmentView]
    ) -> AssignmentView | None:
        """Offer the case to the next candidate (no text yet: `send_offer` does that); None
        when someone else offered first or nobody is left in this round (then the case waits
        for the next round, or after the last one escalates)."""
        now = self.clock()
        tried = {a.mediator_id for a in assignments if a.round == case.round}
        rota_at = max(now, case.rota_at)  # booking: whoever is on duty at the opening
        candidate = self.roster.next_candidate(case.district, rota_at, tried)
        if candidate is None:
            await self.nobody_left(case, now)
            return None
        assignment = await self.desk.offer(
            case.id,
            mediator_id=candidate.mediator.id,
            district=candidate.district,
            reach=candidate.reach.value,
            answer_due_at=self.answer_due(case, now),
        )
        if assignment is None:
            return None
        await self.incidents.add_note(
            case.number,
            f"已通知人民调解员 {candidate.mediator.id}（{candidate.reason}），"
            f"请其在{_local_text(self.schedule, assignment.answer_due_at)}前接单",
            actor=ACTOR,
        )
        if not assignments:  # the case's first offer (whoever made it: adapter or supervisor)
            await self.tell_citizen(case.number, self.assigned_text(case))
        return assignment

    async def nobody_left(self, case: MediationCaseView, now: datetime) -> None:
        """Nobody took this round: wait for the next working day's opening and ask the
        roster again from the top, or, after the last round, escalate to a person."""
        if case.round < self.rounds:
            retry_at = self.schedule.next_opening(now)
            if not await self.desk.wait_for_retry(case.id, case.round, retry_at):
                return
            when = _local_text(self.schedule, retry_at)
            logger.warning(
                "mediation case %s (incident %s): nobody took round %d; next round at %s",
                case.id,
                case.number,
                case.round,
                retry_at.isoformat(),
            )
            await self.incidents.add_note(
                case.number,
                f"第{case.round}轮已联系的人民调解员均未接单（或无人值班），"
                f"将于{when}起从值班名单第一位重新联系",
                actor=ACTOR,
            )
            await self.tell_citizen(
                case.number,
                f"您的报警（编号{case.number}）暂时没有人民调解员接单，我们将于{when}起"
                "再次为您联系调解员。如冲突升级或有人受到威胁，请立即拨打110。",
            )
            return
        if await self.desk.exhaust(case.id, NO_MEDIATOR):
            await self.announce_escalation(case, NO_MEDIATOR)

    def link(self, assignment: AssignmentView) -> str:
        token = sign_link(self.link_key, assignment.id, assignment.offered_at + LINK_VALID)
        return mediator_url(self.public_url, token)

    async def send_offer(self, case: MediationCaseView, assignment: AssignmentView) -> bool:
        """Text the mediator about their offer, once (a claim guards against a second
        worker); raises `SmsDeliveryError` with the claim released so a retry sends it.
        Every attempt has the same key (case and offer), so a resend after a crash between
        the send and `sms_done` is kept once by the gateway."""
        if not await self.desk.claim_sms(assignment.id, self.clock() - SMS_CLAIM_LEASE):
            return False
        mediator = self.roster.get(assignment.mediator_id)
        if mediator is None:  # removed from the roster since: let the offer lapse at once
            await self.desk.sms_done(assignment.id, "no-such-mediator")
            await self.desk.expire(assignment.id)
            return False
        params = {"number": case.number, "district": case.district or "区县不明"}
        if case.mode == ON_DUTY and case.sla_due_at is not None:
            template = MEDIATION_ON_DUTY
            params["deadline"] = _local_text(self.schedule, case.sla_due_at)
        else:
            template = MEDIATION_BOOKING
            params["book_at"] = _local_text(self.schedule, case.rota_at)
        params["link"] = self.link(assignment)
        try:
            receipt = await self.sms.send(
                mediator.phone, template, params, key=offer_key(template, case, assignment)
            )
        except Exception:
            await self.desk.sms_done(assignment.id, None)
            raise
        await self.desk.sms_done(assignment.id, receipt.message_id)
        return True

    async def tell_cancelled(
        self, case: MediationCaseView, assignment: AssignmentView, moved_to: str | None = None
    ) -> None:
        """Tell a texted mediator the case is off: withdrawn by the reporter, or moved to
        another route (`moved_to`, e.g. 110 when the dispute turned violent)."""
        mediator = self.roster.get(assignment.mediator_id)
        if mediator is None or assignment.sms_sent_at is None:
            return
        if moved_to:
            template, params = MEDIATION_REROUTED, {"number": case.number, "route": moved_to}
        else:
            template, params = MEDIATION_CANCEL, {"number": case.number}
        key = offer_key(template, case, assignment)
        await self.sms.send(mediator.phone, template, params, key=key)

    async def escalate(self, case: MediationCaseView, reason: str) -> bool:
        """Escalate a deadline once per case: a timeline note for call-takers, a log line
        and the metric hook."""
        if not await self.desk.escalate(case.id, reason):
            return False
        await self.announce_escalation(case, reason)
        return True

    async def announce_escalation(self, case: MediationCaseView, reason: str) -> None:
        """What an escalation recorded in the desk shows: a log line (ids and the reason,
        nothing about the people), the timeline note and the metric hook."""
        logger.warning(
            "mediation case %s (incident %s) escalated: %s", case.id, case.number, reason
        )
        await self.incidents.add_note(case.number, ESCALATION_NOTES[reason], actor=ACTOR)
        if self.on_escalation is not None:
            try:
                result = self.on_escalation(reason)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a metric must not stop the escalation
                logger.exception("mediation escalation callback failed")

    async def tell_citizen(self, number: str, text: str) -> None:
        record = await self.incidents.get(number)
        if record is not None:
            await notify_quietly(self.notifier, record.channel, record.sender_id, text)

    def assigned_text(self, case: MediationCaseView) -> str:
        if case.mode == ON_DUTY and case.sla_due_at is not None:
            return (
                f"您的报警（编号{case.number}）已转交人民调解员，调解员将在"
                f"{_local_text(self.schedule, case.sla_due_at)}前到场，请保持电话畅通。"
                "如冲突升级或有人受到威胁，请立即拨打110。"
            )
        return (
            f"您的报警（编号{case.number}）已转交人民调解员。现在是非工作时间，调解员将于"
            f"{_local_text(self.schedule, case.rota_at)}起与您联系，预约调解时间。"
            "如冲突升级或有人受到威胁，请立即拨打110。"
        )


def _handoff_error(exc: SmsDeliveryError) -> HandoffError:
    return HandoffError(f"mediator SMS: {exc}", retryable=exc.retryable, status_code=exc.status)


class MediationAdapter:
    """The `mediation` outbox target (a `HandoffAdapter`): opens the case, offers it and
    texts the mediator. Idempotent on the outbox key: a redelivery finds the case and only
    finishes what is missing (an unsent text), so a crash between steps is harmless."""

    receiver = "mediation"

    def __init__(self, dispatcher: MediationDispatcher) -> None:
        self.dispatcher = dispatcher

    async def deliver(self, message: HandoffMessage) -> Delivery:
        try:
            if message.kind == CREATE:
                return await self._create(message)
            if message.kind == CANCEL:
                return await self._cancel(message)
        except SmsDeliveryError as exc:
            raise _handoff_error(exc) from None
        return Delivery(external_ref=None)  # updates: the mediator reads the case online

    async def _create(self, message: HandoffMessage) -> Delivery:
        d = self.dispatcher
        case = await d.desk.case_by_key(message.idempotency_key)
        created = False
        if case is None:
            plan = d.schedule.plan(d.clock())
            booking_due = None
            if plan.mode is PlanMode.BOOKING and plan.book_at is not None:
                day = d.schedule.local(plan.book_at).date()
                booking_due = datetime.combine(day, d.schedule.hours[1], tzinfo=d.schedule.tz)
            case, created = await d.desk.open_case(
                handoff_key=message.idempotency_key,
                number=message.number,
                mode=ON_DUTY if plan.mode is PlanMode.ON_DUTY else BOOKING,
                district=message.location.district,
                received_at=plan.decided_at,
                rota_at=plan.rota_at,
                sla_due_at=plan.on_site_by,
                booking_due_at=booking_due,
            )
            if created:
                await d.incidents.add_note(message.number, plan.reason, actor=ACTOR)
        assignments = await d.desk.assignments(case.id)
        if case.state == CASE_OPEN and not any(a.live for a in assignments):
            offered = await d.offer_next(case, assignments)
            if offered is not None:
                assignments = [*assignments, offered]
        for assignment in assignments:
            if text_due(assignment, d.clock()):
                await d.send_offer(case, assignment)
        return Delivery(external_ref=f"mediation-{case.id}", duplicate=not created)

    async def _cancel(self, message: HandoffMessage) -> Delivery:
        d = self.dispatcher
        # Text first, close after: a failed text is retried with the case still live (a
        # crash in between resends under the same key, which the gateway keeps once).
        # A cancel with the incident not withdrawn is a reroute (triage or a call-taker moved
        # it, e.g. to 110): the mediator is told where it went, not that the reporter withdrew.
        moved_to = None if message.status == CANCELLED else message.route_label
        for case in await d.desk.cases_for(message.number):
            for assignment in await d.desk.assignments(case.id):
                if assignment.live:
                    await d.tell_cancelled(case, assignment, moved_to)
            await d.desk.cancel(case.id)
        return Delivery(external_ref=None)


class MediationSupervisor:
    """Runs `decide` over the open cases: every `interval_s` in each worker, or `run_once`
    with a controllable clock in tests. Also takes the mediator's answers (the portal)."""

    def __init__(self, dispatcher: MediationDispatcher, *, interval_s: float = 30.0) -> None:
        self.dispatcher = dispatcher
        self.interval_s = interval_s

    async def run_once(self) -> list[Step]:
        """One pass; returns the steps carried out (for tests and logs)."""
        d = self.dispatcher
        done: list[Step] = []
        for case, assignments in await d.desk.active_cases():
            now = d.clock()
            lost = False
            for step in decide(case, assignments, now):
                try:
                    if await self._run(step, case, assignments, lost):
                        done.append(step)
                    elif step.action == EXPIRE:
                        lost = True  # another worker expired it and offers the next one
                except SmsDeliveryError as exc:
                    logger.warning("mediation case %s: text not sent (%s)", case.id, exc)
        return done

    async def _run(
        self,
        step: Step,
        case: MediationCaseView,
        assignments: Sequence[AssignmentView],
        lost: bool,
    ) -> bool:
        d = self.dispatcher
        if step.action == EXPIRE:
            assert step.assignment_id is not None
            return await d.desk.expire(step.assignment_id)
        if step.action == SEND_SMS:
            found = await d.desk.assignment(step.assignment_id or 0)
            return found is not None and await d.send_offer(case, found)
        if step.action == OFFER_NEXT:
            if lost:
                return False
            offered = await d.offer_next(case, await d.desk.assignments(case.id))
            if offered is None:
                return False
            await d.send_offer(case, offered)
            return True
        if step.action == ESCALATE:
            return await d.escalate(case, step.reason or SLA_BREACH)
        if step.action == RETRY:
            return await self._next_round(case)
        raise ValueError(f"unknown step {step.action!r}")

    async def _next_round(self, case: MediationCaseView) -> bool:
        """A waiting case's time has come: ask the roster again from the top."""
        d = self.dispatcher
        if not await d.desk.retry(case.id):
            return False  # another worker started it
        reopened = await d.desk.case(case.id)
        if reopened is None:
            return False
        await d.incidents.add_note(
            case.number, f"第{reopened.round}轮：重新从值班名单第一位联系人民调解员", actor=ACTOR
        )
        offered = await d.offer_next(reopened, await d.desk.assignments(case.id))
        if offered is not None:
            await d.send_offer(reopened, offered)
        return True

    async def answer(self, assignment_id: int, accepted: bool) -> bool:
        """A mediator's answer from the portal: accept (the citizen is told), or decline
        (the next mediator is asked at once rather than at the next pass)."""
        d = self.dispatcher
        assignment = await d.desk.assignment(assignment_id)
        if assignment is None:
            return False
        case = await d.desk.case(assignment.case_id)
        if case is None:
            return False
        if accepted:
            if not await d.desk.accept(assignment_id):
                return False
            await d.incidents.add_note(
                case.number, f"人民调解员 {assignment.mediator_id} 已接单", actor=ACTOR
            )
            await d.tell_citizen(
                case.number, f"您的报警（编号{case.number}）已有人民调解员接单，将与您联系。"
            )
            return True
        if not await d.desk.decline(assignment_id):
            return False
        offered = await d.offer_next(case, await d.desk.assignments(case.id))
        if offered is not None:
            try:
                await d.send_offer(case, offered)
            except SmsDeliveryError as exc:  # the next pass sends it
                logger.warning("mediation case %s: text not sent (%s)", case.id, exc)
        return True

    async def arrive(self, assignment_id: int) -> bool:
        """The accepted mediator is on site (or has booked the time): the clock stops and
        the incident is 处理中 (in_progress); a closed or withdrawn one only gets the note."""
        d = self.dispatcher
        if not await d.desk.arrive(assignment_id):
            return False
        assignment = await d.desk.assignment(assignment_id)
        case = None if assignment is None else await d.desk.case(assignment.case_id)
        if assignment is None or case is None:
            return True
        what = "已到场" if case.mode == ON_DUTY else "已与报警人约定调解时间"
        note = f"人民调解员 {assignment.mediator_id} {what}"
        try:
            await d.incidents.set_status(case.number, IN_PROGRESS, actor=ACTOR, note=note)
        except IncidentClosed:
            await d.incidents.add_note(case.number, note, actor=ACTOR)
        return True

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Passes until `stop` is set; a failing pass (database down) is logged and retried."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                logger.exception("mediation supervisor pass failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
