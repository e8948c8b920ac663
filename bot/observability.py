"""Logs (one line per request, optional JSON) and Prometheus metrics, per application."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "msg": record.getMessage(),
        }
        for key in ("method", "path", "status", "duration_ms", "channel"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Our format for everything, and Rasa's structlog capped at our level.

    Used as a library Rasa logs through structlog at DEBUG unless told otherwise, so every
    message would pay for formatting debug events nobody reads.
    """
    import structlog

    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-5s [%(request_id)s] %(name)s: %(message)s",
                "%Y-%m-%d %H:%M:%S",
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Third-party chatter that would otherwise echo message contents at INFO/DEBUG.
    for noisy in ("rasa", "rasa_sdk", "tensorflow", "absl", "jieba", "alembic", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(max(numeric, logging.WARNING)),
        cache_logger_on_first_use=True,
    )


class Metrics:
    """A registry of our own, so two apps in one process (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "alarmbot_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "alarmbot_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.messages = Counter(
            "alarmbot_messages",
            "Citizen messages handled, by channel",
            ["channel"],
            registry=self.registry,
        )
        self.dialogue_latency = Histogram(
            "alarmbot_dialogue_turn_seconds",
            "Time for Rasa to answer one message, by channel",
            ["channel"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.uploads = Counter(
            "alarmbot_uploads",
            "Files kept from citizens, by kind (image, voice, video)",
            ["kind"],
            registry=self.registry,
        )
        self.upload_rejections = Counter(
            "alarmbot_upload_rejections",
            "Uploads refused, by error code (too_large, bad_type, ...)",
            ["reason"],
            registry=self.registry,
        )
        self.errors = Counter(
            "alarmbot_errors",
            "Errors by kind",
            ["kind"],
            registry=self.registry,
        )
        self.handoff_attempts = Counter(
            "alarmbot_handoff_attempts",
            "Deliveries tried to 110 / 12345 / mediation, by target and outcome",
            ["target", "ok"],
            registry=self.registry,
        )
        self.handoff_dead = Counter(
            "alarmbot_handoff_dead_letters",
            "Handoffs given up after the retry limit (an operator must act)",
            ["target"],
            registry=self.registry,
        )
        self.mediation_escalations = Counter(
            "alarmbot_mediation_escalations",
            "Mediation cases escalated to call-takers (sla_breach, booking_overdue; no_mediator: "
            "nobody took it in two rounds)",
            ["reason"],
            registry=self.registry,
        )
        self.mediation_cases = Gauge(
            "alarmbot_mediation_cases",
            "Mediation cases by state (waiting: nobody took it, retried at the next opening; "
            "exhausted: nobody took it twice, a person must act)",
            ["state"],
            registry=self.registry,
        )
        self.calendar_missing_year = Counter(
            "alarmbot_calendar_missing_year",
            "Work-day look-ups in a year without holiday data (Mon-Fri fallback): update "
            "routing/calendar/cn_workdays.yml",
            ["year"],
            registry=self.registry,
        )
        self.outbox = Gauge(
            "alarmbot_outbox_rows",
            "Outbox rows by status (pending, sending, sent, dead)",
            ["status"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "alarmbot_ready", "1 once the model is loaded and serving", registry=self.registry
        )
