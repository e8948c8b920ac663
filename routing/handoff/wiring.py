"""Putting the handoff together from the environment: which adapter per target, the relay,
and (in development) the local stand-in receivers.

Environment (all optional):

* CAD_URL, CAD_TOKEN: the 110 CAD intake URL and its bearer token;
  WORKORDER_URL, WORKORDER_TOKEN: the same for 12345 work orders. Unset: a LOCAL stand-in
  receiver in dev and test, nothing in prod.
* HANDOFF_TIMEOUT_S: HTTP timeout per delivery (10).
* OUTBOX_MAX_ATTEMPTS: tries before a row is dead-lettered (8).
* OUTBOX_POLL_S: seconds between relay rounds when idle (1).
* ALARMBOT_PUBLIC_URL: base of the console link sent to the CAD and of the mediators' signed
  links (http://127.0.0.1:8080).
* MEDIATORS_FILE: the mediator roster (YAML/CSV); unset, the one `alarmbot mediators import`
  installed under the var dir;
  MEDIATION_FILE: hours and calendar (routing/mediation.yml); SMS_URL, SMS_API_KEY: the SMS
  gateway that texts mediators (and citizens their registration codes); ALARMBOT_LINK_KEY:
  key of the signed links (default: derived from the PII key); MEDIATION_POLL_S: seconds
  between supervisor passes (30). In dev a missing roster is the example file and a missing
  SMS_URL a LOCAL SMS gateway stand-in, reached through the production HTTP adapter
  (`Handoff.sms_url`; what it received: var/local-receivers/local-sms-gateway.jsonl).

In prod a target without a URL gets no adapter: its rows stay pending (visible in `alarmbot
outbox list` and the metrics) and go out once the URL is configured, rather than being
marked delivered to nobody. The same holds for mediation without MEDIATORS_FILE or SMS_URL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from routing.adapters.sms import HttpSmsGateway, LocalSmsOutbox, SmsGateway
from routing.handoff.adapters import (
    DEFAULT_DEADLINE_DAYS,
    FALLBACK_DEADLINE_DAYS,
    DeadlineFn,
    HandoffAdapter,
    HttpCadAdapter,
    HttpWorkOrderAdapter,
    calendar_deadline,
)
from routing.handoff.links import link_key
from routing.handoff.local_receivers import (
    LOCAL_CAD,
    LOCAL_SMS,
    LOCAL_WORKORDER,
    LocalReceiver,
    running_local_receiver,
)
from routing.handoff.mediation import (
    EscalationCallback,
    MediationAdapter,
    MediationDispatcher,
    MediationSupervisor,
)
from routing.handoff.messages import ContactLookup
from routing.handoff.relay import (
    HANDOFF_EFFECTS,
    AttemptCallback,
    DeadCallback,
    Effect,
    OutboxRelay,
    close_adapters,
)
from routing.mediators import EXAMPLE_FILE, Roster
from routing.notify import CitizenNotifier, StoredNotifier
from routing.schedule import DEFAULT_FILE as SCHEDULE_FILE
from routing.schedule import MediationSchedule
from store.crypto import PiiCipher
from store.db import Database
from store.incidents import IncidentBook
from store.mediation import MediationDesk
from store.models import utcnow
from store.notices import NoticeBoard
from store.outbox import CAD110, MEDIATION, WORKORDER_12345, Outbox

logger = logging.getLogger(__name__)

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
_HTTP_TARGETS = {CAD110: "CAD", WORKORDER_12345: "WORKORDER"}  # target → env prefix
_LOCAL_NAMES = {CAD110: LOCAL_CAD, WORKORDER_12345: LOCAL_WORKORDER}


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        value = float(env.get(name) or default)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {env.get(name)!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive")
    return value


def working_day_deadline(schedule: MediationSchedule) -> DeadlineFn:
    """办理时限 in working days: DEFAULT_DEADLINE_DAYS read as working days, counted by the
    schedule's calendar (调休 and holidays) and ending at closing time (schedule's rules)."""

    def deadline(start: datetime, category: str) -> datetime:
        days = DEFAULT_DEADLINE_DAYS.get(category, FALLBACK_DEADLINE_DAYS)
        return schedule.workorder_deadline(start, days)

    return deadline


def workorder_deadlines(env: Mapping[str, str]) -> DeadlineFn:
    """Working-day deadlines from MEDIATION_FILE's calendar; calendar days, loudly, if that
    file cannot be read (a work order with a rough deadline beats no work order)."""
    try:
        schedule = MediationSchedule.from_file(env.get("MEDIATION_FILE") or SCHEDULE_FILE)
    except (OSError, ValueError) as exc:
        logger.error("12345 deadlines fall back to calendar days: %s", exc)
        return calendar_deadline
    return working_day_deadline(schedule)


def missing_urls(env: Mapping[str, str]) -> list[str]:
    """Targets whose URL is not configured (they need a local stand-in in development)."""
    return [target for target, prefix in _HTTP_TARGETS.items() if not env.get(f"{prefix}_URL")]


def build_relay(
    db: Database,
    cipher: PiiCipher,
    env: Mapping[str, str],
    *,
    local_urls: Mapping[str, str] | None = None,
    extra_adapters: Mapping[str, HandoffAdapter] | None = None,
    incidents: IncidentBook | None = None,
    contacts: ContactLookup | None = None,
    clock: Callable[[], datetime] = utcnow,
    on_attempt: AttemptCallback | None = None,
    on_dead: DeadCallback | None = None,
    worker_id: str | None = None,
    effects: Mapping[tuple[str, str], Effect] | None = None,
) -> OutboxRelay:
    """The relay for this worker: HTTP adapters for CAD_URL / WORKORDER_URL, else for the
    URLs in `local_urls` (local stand-ins), plus `extra_adapters` (mediation, later SMS)."""
    timeout_s = _number(env, "HANDOFF_TIMEOUT_S", 10.0)
    adapters: dict[str, HandoffAdapter] = {}
    for target, prefix in _HTTP_TARGETS.items():
        url = env.get(f"{prefix}_URL") or (local_urls or {}).get(target)
        if not url:
            logger.warning(
                "%s_URL not set: %s handoffs wait in the outbox until it is", prefix, target
            )
            continue
        token = env.get(f"{prefix}_TOKEN", "")
        if target == CAD110:
            adapters[target] = HttpCadAdapter(url, token, timeout_s)
        else:
            adapters[target] = HttpWorkOrderAdapter(
                url, token, timeout_s, deadline=workorder_deadlines(env)
            )
    adapters.update(extra_adapters or {})
    return OutboxRelay(
        Outbox(db, cipher, now=clock),
        adapters,
        incidents=incidents or IncidentBook(db, cipher, now=clock),
        console_base_url=env.get("ALARMBOT_PUBLIC_URL") or DEFAULT_PUBLIC_URL,
        contacts=contacts,
        worker_id=worker_id,
        lease_s=max(60.0, 4 * timeout_s),
        deliver_timeout_s=2 * timeout_s,
        max_attempts=int(_number(env, "OUTBOX_MAX_ATTEMPTS", 8)),
        clock=clock,
        on_attempt=on_attempt,
        on_dead=on_dead,
        interval_s=_number(env, "OUTBOX_POLL_S", 1.0),
        effects=HANDOFF_EFFECTS if effects is None else effects,
    )


# Where `alarmbot mediators import FILE` installs a checked roster (under ALARMBOT_VAR_DIR).
INSTALLED_ROSTERS = ("mediators.yml", "mediators.csv")


def installed_roster(var_dir: Path) -> str | None:
    for name in INSTALLED_ROSTERS:
        if (var_dir / name).is_file():
            return str(var_dir / name)
    return None


def build_mediation(
    db: Database,
    cipher: PiiCipher,
    env: Mapping[str, str],
    var_dir: Path,
    *,
    incidents: IncidentBook,
    notifier: CitizenNotifier | None = None,
    clock: Callable[[], datetime] = utcnow,
    on_escalation: EscalationCallback | None = None,
    on_missing_year: Callable[[int], None] | None = None,
) -> MediationSupervisor | None:
    """The mediation adapter's dispatcher and supervisor from the environment (see the module
    docstring); None in prod without a roster or an SMS gateway (rows wait in the outbox)."""
    prod = env.get("ALARMBOT_ENV", "dev") == "prod"
    roster_file = env.get("MEDIATORS_FILE") or installed_roster(var_dir)
    if roster_file is None and not prod:
        roster_file = str(EXAMPLE_FILE)
    if roster_file is None:
        logger.warning("MEDIATORS_FILE not set: mediation handoffs wait in the outbox until it is")
        return None
    sms: SmsGateway
    if env.get("SMS_URL"):
        sms = HttpSmsGateway(env["SMS_URL"], env.get("SMS_API_KEY", ""))
    elif prod:
        logger.warning("SMS_URL not set: mediation handoffs wait in the outbox until it is")
        return None
    else:
        sms = LocalSmsOutbox(var_dir / "local-sms.jsonl")
    schedule = MediationSchedule.from_file(
        env.get("MEDIATION_FILE") or SCHEDULE_FILE, on_missing_year=on_missing_year
    )
    roster = Roster.from_file(roster_file).with_calendar(schedule.calendar)
    dispatcher = MediationDispatcher(
        MediationDesk(db, now=clock),
        roster,
        schedule,
        sms,
        incidents=incidents,
        link_key=link_key(env, cipher),
        public_url=env.get("ALARMBOT_PUBLIC_URL") or DEFAULT_PUBLIC_URL,
        notifier=notifier,
        clock=clock,
        on_escalation=on_escalation,
    )
    return MediationSupervisor(dispatcher, interval_s=_number(env, "MEDIATION_POLL_S", 30.0))


@dataclass
class Handoff:
    """What `running_handoff` keeps alive: the relay, its outbox, local stand-ins and the
    mediation supervisor (None when mediation is not configured)."""

    relay: OutboxRelay
    local_receivers: dict[str, LocalReceiver] = field(default_factory=dict)
    mediation: MediationSupervisor | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # The LOCAL SMS gateway stand-in's URL in development when SMS_URL is not set: the
    # registration codes go the same HTTP way as in production.
    local_sms_url: str | None = None

    @property
    def outbox(self) -> Outbox:
        return self.relay.outbox

    def halt(self) -> None:
        """Let the background loops finish their round now, before the block ends: a server
        shutting down waits for every task it did not start with (aiohttp's on_shutdown)."""
        self.stopping.set()


@asynccontextmanager
async def running_handoff(
    db: Database,
    cipher: PiiCipher,
    env: Mapping[str, str],
    var_dir: Path,
    *,
    notifier: CitizenNotifier | None = None,
    on_escalation: EscalationCallback | None = None,
    on_missing_year: Callable[[int], None] | None = None,
    **relay_options: Any,  # noqa: ANN401 - passed on to build_relay
) -> AsyncIterator[Handoff]:
    """Run the handoff for an app's lifetime (an aiohttp cleanup_ctx body).

    Outside prod, targets without a URL get a LOCAL stand-in receiver on 127.0.0.1 that
    records to `var_dir/local-receivers/`. The relay runs as a background task until the
    block ends; then it finishes its round, HTTP sessions close and stand-ins stop.
    `relay_options` go to `build_relay` (contacts, on_attempt, on_dead, extra_adapters…).
    Unless `extra_adapters` has one, mediation is built here (`build_mediation`) and its
    supervisor runs beside the relay; `notifier` tells citizens (default: stored notices for
    the H5 page), `on_escalation` counts escalations, `on_missing_year(year)` counts look-ups
    in a year the work-day calendar has no data for (Mon–Fri fallback).
    """
    async with AsyncExitStack() as stack:
        local_urls: dict[str, str] = {}
        receivers: dict[str, LocalReceiver] = {}
        local_sms_url: str | None = None
        if env.get("ALARMBOT_ENV", "dev") != "prod":
            for target in missing_urls(env):
                running = await stack.enter_async_context(
                    running_local_receiver(_LOCAL_NAMES[target], var_dir / "local-receivers")
                )
                local_urls[target] = running.url
                receivers[target] = running.receiver
            if not env.get("SMS_URL"):
                running = await stack.enter_async_context(
                    running_local_receiver(
                        LOCAL_SMS, var_dir / "local-receivers", id_field="message_id"
                    )
                )
                receivers["sms"] = running.receiver
                local_sms_url = running.base_url
                env = {**env, "SMS_URL": local_sms_url}
        supervisor = None
        extra = dict(relay_options.pop("extra_adapters", None) or {})
        if MEDIATION not in extra:
            clock = relay_options.get("clock", utcnow)
            supervisor = build_mediation(
                db,
                cipher,
                env,
                var_dir,
                incidents=relay_options.get("incidents") or IncidentBook(db, cipher, now=clock),
                notifier=notifier or StoredNotifier(NoticeBoard(db, cipher, now=clock)),
                clock=clock,
                on_escalation=on_escalation,
                on_missing_year=on_missing_year,
            )
            if supervisor is not None:
                extra[MEDIATION] = MediationAdapter(supervisor.dispatcher)
                stack.push_async_callback(close_adapters, {"sms": supervisor.dispatcher.sms})
        relay = build_relay(
            db, cipher, env, local_urls=local_urls, extra_adapters=extra, **relay_options
        )
        stack.push_async_callback(close_adapters, relay.adapters)
        handoff = Handoff(
            relay,
            receivers,
            supervisor,
            local_sms_url=local_sms_url,
        )
        stop = handoff.stopping
        tasks = [asyncio.create_task(relay.run_forever(stop), name="outbox-relay")]
        if supervisor is not None:
            tasks.append(
                asyncio.create_task(supervisor.run_forever(stop), name="mediation-supervisor")
            )
        try:
            yield handoff
        finally:
            stop.set()
            await asyncio.gather(*tasks)
