"""The outbox relay: a background task in every worker that sends due outbox rows through the
target's adapter, records each attempt, retries with backoff and gives up into dead-letter.

Delivery is at least once; the idempotency key makes it once at the receiver. What may
happen and what it leads to:

* receiver accepts (2xx, or 409 "already have it") → row `sent`, and the incident moves on
  in the same transaction (`HANDOFF_EFFECTS`);
* retryable failure (5xx, 408/429, timeout, unreadable answer, unexpected exception) →
  `pending` again after `min(max_delay, base·2^(attempt-1))` scaled by jitter ("full
  jitter": uniform in [0, cap], so retries of many rows after an outage spread out), or the
  receiver's Retry-After if longer; after `max_attempts` tries → `dead`;
* non-retryable failure (4xx, a payload we cannot open or build) → `dead` at once;
* the worker dies mid-send → its lease runs out, another worker claims the row and sends it
  again under the same key (a claim counts as an attempt, so a row that kills its worker
  every time still ends up dead instead of looping).

Dead rows wait for an operator (`Outbox.retry`). Callbacks `on_attempt` / `on_dead` feed
metrics and alerts; they get outbox items and attempts, which carry no personal data.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from routing.handoff.adapters import Delivery, HandoffAdapter, HandoffError
from routing.handoff.messages import ContactLookup, build_message
from store.incidents import (
    TRANSFERRED_12345,
    TRANSFERRED_MEDIATION,
    IncidentBook,
    record_from_snapshot,
)
from store.models import utcnow
from store.outbox import CAD110, MEDIATION, WORKORDER_12345, Attempt, Outbox, OutboxItem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Effect:
    """What a delivered handoff does to its incident: a new status (only from `received`)
    and a timeline note (Chinese: citizens and call-takers read the timeline)."""

    status: str | None = None
    note: str | None = None


# Accepting a report into the CAD is not sending a unit: a 110 incident stays `received`.
HANDOFF_EFFECTS: Mapping[tuple[str, str], Effect] = {
    (CAD110, "create"): Effect(note="已推送110接处警系统"),
    (CAD110, "cancel"): Effect(note="已通知110接处警系统：报警人撤销"),
    (WORKORDER_12345, "create"): Effect(status=TRANSFERRED_12345, note="已转12345市民热线"),
    (WORKORDER_12345, "cancel"): Effect(note="已通知12345市民热线撤销工单"),
    (MEDIATION, "create"): Effect(status=TRANSFERRED_MEDIATION, note="已转人民调解"),
    (MEDIATION, "cancel"): Effect(note="已通知人民调解员：报警人撤销"),
}

Jitter = Callable[[float], float]
AttemptCallback = Callable[[OutboxItem, Attempt], object]
DeadCallback = Callable[[OutboxItem, str], object]


def full_jitter(cap: float) -> float:
    return random.uniform(0.0, cap)


def default_worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}"


class OutboxRelay:
    """Sends due outbox rows; `run_once` is one round, `run_forever` the background task.

    `clock` gives aware datetimes and is only ever compared with database times, so tests
    drive retries by moving it (no sleeping, no wall-clock asserts). `adapters` maps outbox
    targets to adapters: rows for other targets are left for a relay that has one.
    """

    def __init__(
        self,
        outbox: Outbox,
        adapters: Mapping[str, HandoffAdapter],
        *,
        incidents: IncidentBook | None = None,
        console_base_url: str = "http://127.0.0.1:8080",
        contacts: ContactLookup | None = None,
        worker_id: str | None = None,
        batch_size: int = 8,
        concurrency: int = 8,
        lease_s: float = 60.0,
        deliver_timeout_s: float = 30.0,
        max_attempts: int = 8,
        base_delay_s: float = 2.0,
        max_delay_s: float = 600.0,
        jitter: Jitter = full_jitter,
        clock: Callable[[], datetime] = utcnow,
        on_attempt: AttemptCallback | None = None,
        on_dead: DeadCallback | None = None,
        effects: Mapping[tuple[str, str], Effect] = HANDOFF_EFFECTS,
        interval_s: float = 1.0,
    ) -> None:
        if max_attempts < 1 or concurrency < 1 or batch_size < 1:
            raise ValueError("max_attempts, concurrency and batch_size must be at least 1")
        waves = math.ceil(batch_size / concurrency)  # a claimed row may wait for a slot
        if lease_s <= deliver_timeout_s * waves:
            raise ValueError("the lease must outlast a batch, or two workers send one row at once")
        self.outbox = outbox
        self.adapters = dict(adapters)
        self.incidents = incidents
        self.console_base_url = console_base_url
        self.contacts = contacts
        self.worker_id = worker_id or default_worker_id()
        self.batch_size = batch_size
        self.lease_s = lease_s
        self.deliver_timeout_s = deliver_timeout_s
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.jitter = jitter
        self.clock = clock
        self.on_attempt = on_attempt
        self.on_dead = on_dead
        self.effects = dict(effects)
        self.interval_s = interval_s
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()

    # --- one round ---

    async def run_once(self) -> int:
        """Claim up to `batch_size` due rows and deliver them concurrently; returns how many."""
        if not self.adapters:
            return 0
        items = await self.outbox.claim_due(
            self.worker_id,
            limit=self.batch_size,
            now=self.clock(),
            lease_s=self.lease_s,
            targets=self.adapters,
        )
        if items:
            await asyncio.gather(*(self._guarded(item) for item in items))
        return len(items)

    def backoff_s(self, attempts: int, retry_after_s: float | None = None) -> float:
        """Delay before try `attempts + 1`: full jitter under an exponential cap."""
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** max(0, attempts - 1))
        delay = max(0.0, min(cap, self.jitter(cap)))
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_delay_s))
        return delay

    async def _guarded(self, item: OutboxItem) -> None:
        async with self._limit:
            try:
                await self._handle(item)
            except Exception:  # the store is down, say: the lease brings the row back
                logger.exception(
                    "outbox relay: recording the outcome of row %s failed; it is sent again "
                    "once its lease ends",
                    item.id,
                )

    async def _handle(self, item: OutboxItem) -> None:
        if item.attempts > self.max_attempts:  # claimed again and again, never an outcome
            await self._dead(item, f"no outcome after {item.attempts - 1} claims (worker lost)")
            return
        if item.payload is None:  # sealed under another key, or corrupt: no retry will help
            await self._dead(item, item.payload_error or "no payload")
            return
        started = time.monotonic()
        try:
            record = record_from_snapshot(item.payload["incident"])
        except Exception as exc:  # a snapshot we cannot read: retrying will not help
            await self._dead(item, f"unreadable snapshot: {type(exc).__name__}")
            return
        try:
            contact = None if self.contacts is None else await self.contacts(record)
        except Exception as exc:  # the citizen store is down, say: try again later
            error = f"contact lookup failed: {type(exc).__name__}"
            await self._failed(item, started, error, True, None, None)
            return
        try:
            message = build_message(
                record,
                target=item.target,
                kind=item.kind,
                idempotency_key=item.idempotency_key,
                console_base_url=self.console_base_url,
                contact=contact,
            )
        except Exception as exc:  # a bug: retrying will not help
            await self._dead(item, f"cannot build the message: {type(exc).__name__}")
            return
        try:
            delivery = await asyncio.wait_for(
                self.adapters[item.target].deliver(message), self.deliver_timeout_s
            )
        except HandoffError as exc:
            await self._failed(item, started, str(exc), exc.retryable, exc.status_code, exc)
            return
        except asyncio.TimeoutError:
            error = f"no answer within {self.deliver_timeout_s:g} s"
            await self._failed(item, started, error, True, None, None)
            return
        except Exception as exc:  # an adapter bug must not kill the relay; its text may leak
            error = f"adapter error: {type(exc).__name__}"
            await self._failed(item, started, error, True, None, None)
            return
        await self._delivered(item, started, delivery)

    def _attempt(
        self, started: float, ok: bool, status_code: int | None, error: str | None
    ) -> Attempt:
        return Attempt(
            at=self.clock(),
            ok=ok,
            duration_ms=int((time.monotonic() - started) * 1000),
            status_code=status_code,
            error=error,
            worker=self.worker_id,
        )

    async def _delivered(self, item: OutboxItem, started: float, delivery: Delivery) -> None:
        attempt = self._attempt(started, True, delivery.status_code, None)
        effect = self.effects.get((item.target, item.kind), Effect())
        if self.incidents is not None:
            await self.incidents.handoff_delivered(
                item.id,
                external_ref=delivery.external_ref,
                status=effect.status,
                note=effect.note,
                attempt=attempt,
            )
        else:
            await self.outbox.mark_sent(
                item.id, external_ref=delivery.external_ref, now=self.clock(), attempt=attempt
            )
        logger.info(
            "handoff delivered: row %s (%s %s, attempt %s)%s",
            item.id,
            item.target,
            item.kind,
            item.attempts,
            ", receiver already had it" if delivery.duplicate else "",
        )
        await self._notify(self.on_attempt, item, attempt)

    async def _failed(
        self,
        item: OutboxItem,
        started: float,
        error: str,
        retryable: bool,
        status_code: int | None,
        exc: HandoffError | None,
    ) -> None:
        attempt = self._attempt(started, False, status_code, error)
        if not retryable or item.attempts >= self.max_attempts:
            reason = error if not retryable else f"{error} (gave up after {item.attempts} tries)"
            await self._dead(item, reason, attempt)
            await self._notify(self.on_attempt, item, attempt)
            return
        retry_after = None if exc is None else exc.retry_after_s
        delay = self.backoff_s(item.attempts, retry_after)
        await self.outbox.schedule_retry(
            item, self.clock() + timedelta(seconds=delay), error, attempt
        )
        logger.warning(
            "handoff failed: row %s (%s %s, attempt %s/%s): %s; retry in %.1f s",
            item.id,
            item.target,
            item.kind,
            item.attempts,
            self.max_attempts,
            error,
            delay,
        )
        await self._notify(self.on_attempt, item, attempt)

    async def _dead(self, item: OutboxItem, error: str, attempt: Attempt | None = None) -> None:
        if await self.outbox.mark_dead(item, error, attempt):
            logger.error(
                "handoff dead-lettered: row %s (%s %s, incident %s): %s — "
                "`alarmbot outbox retry %s` once the cause is fixed",
                item.id,
                item.target,
                item.kind,
                item.incident_number,
                error,
                item.id,
            )
            await self._notify(self.on_dead, item, error)

    @staticmethod
    async def _notify(callback: Callable[..., object] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:  # metrics must not break delivery
            logger.exception("outbox relay callback failed")

    # --- the background task ---

    def wake(self) -> None:
        """Start the next round now (e.g. right after a submit) instead of at the interval."""
        self._wake.set()

    async def run_forever(self, stop: asyncio.Event, interval_s: float | None = None) -> None:
        """Rounds until `stop` is set: straight on while rows keep coming, else every
        `interval_s` (or on `wake()`). A failing round (database down) is logged and retried."""
        interval = self.interval_s if interval_s is None else interval_s
        logger.info(
            "outbox relay %s started for %s",
            self.worker_id,
            ", ".join(sorted(self.adapters)) or "no targets",
        )
        while not stop.is_set():
            try:
                claimed = await self.run_once()
            except Exception:
                logger.exception("outbox relay round failed; next round in %.1f s", interval)
                claimed = 0
            if claimed >= self.batch_size:
                continue
            await self._pause(stop, interval)
        logger.info("outbox relay %s stopped", self.worker_id)

    async def _pause(self, stop: asyncio.Event, interval_s: float) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({stopping, woken}, timeout=interval_s, return_when="FIRST_COMPLETED")
        finally:
            for waiter in (stopping, woken):
                waiter.cancel()
            self._wake.clear()


async def close_adapters(adapters: Mapping[str, HandoffAdapter]) -> None:
    """Close adapters that hold HTTP sessions."""
    for adapter in adapters.values():
        close: Callable[[], Awaitable[None]] | None = getattr(adapter, "close", None)
        if close is not None:
            await close()
