"""LOCAL STAND-INS for the systems handoffs go to (110 CAD, 12345 work orders, the SMS gateway): small aiohttp
apps on 127.0.0.1 that record what they receive and can be told to misbehave. They reach no
real system; their names, answers and every log line say so.

They are what `make run` (ALARMBOT_ENV=dev) and the tests deliver to when CAD_URL /
WORKORDER_URL are not set, through the production HTTP adapters: only the far end is fake.

What a stand-in does with `POST` on any path but `/_local/…`:

* wants `Idempotency-Key` (400 without) and, if it was given a token, `Authorization:
  Bearer <token>` (401); a body that is not JSON is 400;
* a key it has seen before → 409 `{"reference", "duplicate": true}`: one logical message;
* otherwise it keeps the message and answers 201 `{"reference": "<name>-000001"}`.

The SMS gateway stand-in (`LOCAL_SMS`, `id_field="message_id"`) answers `message_id` where
the others answer `reference`, as `routing.adapters.sms.HttpSmsGateway` expects.

Faults, set through the Python API (`LocalReceiver.fail_next` …) or `POST /_local/control`
with JSON `{"fail": n, "status": 500, "garbage": n, "conflict": n, "delay_s": s, "reset": true}`:

* `fail` — the next n requests get `status` (default 500) and are not kept;
* `delay_s` — every request waits this long before being handled (0 turns it off): a
  client that times out meanwhile has still delivered, as with a real slow system;
* `garbage` — the next n requests are kept but answered with a body that is not JSON;
* `conflict` — the next n requests are kept and answered 409.

`GET /_local/received` lists what was received. Each request is also appended to
`<record_dir>/<name>.jsonl` with the reporter's name and phone masked: a developer can read
what a handoff looked like without the file becoming a contact list.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from routing.identity import mask_name, mask_phone

logger = logging.getLogger(__name__)

LOCAL_CAD = "local-110-cad"
LOCAL_WORKORDER = "local-12345-workorders"
LOCAL_SMS = "local-sms-gateway"
INTAKE_PATH = "/intake"
_MASKERS: dict[str, Callable[[str], str]] = {
    "联系人": mask_name,
    "联系电话": mask_phone,
    "name": mask_name,
    "phone": mask_phone,
}


def _masked(value: Any) -> Any:  # noqa: ANN401 - any JSON
    """`value` with every contact field masked, for the record file."""
    if isinstance(value, dict):
        return {
            key: _MASKERS[key](item) if key in _MASKERS and isinstance(item, str) else _masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the stand-in saw it; `kept` when it became (or was) a logical message."""

    at: float
    path: str
    idempotency_key: str | None
    status: int
    reference: str | None
    duplicate: bool
    kept: bool
    body: Any = field(repr=False)


class LocalReceiver:
    """The state and behaviour of one local stand-in; `app` serves it."""

    def __init__(
        self,
        name: str,
        record_dir: Path | None = None,
        *,
        token: str | None = None,
        id_field: str = "reference",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.id_field = id_field
        self.path = None if record_dir is None else record_dir / f"{name}.jsonl"
        self.token = token
        self.requests: list[ReceivedRequest] = []
        self.messages: dict[str, Any] = {}  # idempotency key → body: one per logical message
        self._references: dict[str, str] = {}
        self._clock = clock
        self._released = asyncio.Event()
        self.reset()

    # --- faults ---

    def reset(self) -> None:
        """Behave well again (what was received is kept)."""
        self._fail, self._fail_status = 0, 500
        self._garbage = 0
        self._conflict = 0
        self.delay_s = 0.0

    def fail_next(self, count: int, status: int = 500) -> None:
        self._fail, self._fail_status = count, status

    def garbage_next(self, count: int) -> None:
        self._garbage = count

    def conflict_next(self, count: int) -> None:
        self._conflict = count

    def slow(self, delay_s: float) -> None:
        self.delay_s = max(0.0, delay_s)

    def release(self) -> None:
        """Let requests waiting in a delay finish now (tests' teardown, shutdown)."""
        self._released.set()

    # --- what tests read ---

    def keys(self) -> list[str]:
        return [r.idempotency_key for r in self.requests if r.idempotency_key]

    @property
    def logical_count(self) -> int:
        return len(self.messages)

    # --- HTTP ---

    async def intake(self, request: web.Request) -> web.Response:
        raw = await request.read()  # taken in at once, handled slowly: as a busy real system
        if self.delay_s:
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._released.wait(), self.delay_s)
        key = request.headers.get("Idempotency-Key")
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._answer(request, key, None, 401, {"error": "unauthorized"})
        if not key:
            return self._answer(request, key, None, 400, {"error": "Idempotency-Key required"})
        try:
            body = json.loads(raw)
        except ValueError:
            return self._answer(request, key, None, 400, {"error": "body is not JSON"})
        if self._fail:
            self._fail -= 1
            return self._answer(request, key, body, self._fail_status, {"error": "local fault"})
        if key in self.messages:
            answer = {self.id_field: self._references[key], "duplicate": True}
            return self._answer(request, key, body, 409, answer, kept=True, duplicate=True)
        reference = f"{self.name}-{len(self.messages) + 1:06d}"
        self.messages[key] = body
        self._references[key] = reference
        if self._garbage:
            self._garbage -= 1
            return self._answer(request, key, body, 200, None, kept=True, raw=b"<html>oops")
        if self._conflict:
            self._conflict -= 1
            answer = {self.id_field: reference, "duplicate": True}
            return self._answer(request, key, body, 409, answer, kept=True, duplicate=True)
        return self._answer(request, key, body, 201, {self.id_field: reference}, kept=True)

    def _answer(
        self,
        request: web.Request,
        key: str | None,
        body: Any,  # noqa: ANN401 - any JSON
        status: int,
        answer: dict[str, Any] | None,
        *,
        kept: bool = False,
        duplicate: bool = False,
        raw: bytes | None = None,
    ) -> web.Response:
        reference = None if answer is None else answer.get(self.id_field)
        seen = ReceivedRequest(
            at=self._clock(),
            path=request.path,
            idempotency_key=key,
            status=status,
            reference=reference,
            duplicate=duplicate,
            kept=kept,
            body=body,
        )
        self.requests.append(seen)
        self._record(seen)
        logger.info(
            "LOCAL %s stand-in (not a real system): HTTP %s for key %s%s",
            self.name,
            status,
            key,
            " (duplicate)" if duplicate else "",
        )
        if raw is not None:
            return web.Response(status=status, body=raw, content_type="text/html")
        return web.json_response(answer, status=status)

    def _record(self, seen: ReceivedRequest) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = {
            "at": seen.at,
            "stand_in": self.name,
            "status": seen.status,
            "idempotency_key": seen.idempotency_key,
            "reference": seen.reference,
            "duplicate": seen.duplicate,
            "body": _masked(seen.body),
        }
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")

    async def control(self, request: web.Request) -> web.Response:
        try:
            orders = json.loads(await request.read() or b"{}")
            if orders.get("reset"):
                self.reset()
            if "fail" in orders:
                self.fail_next(int(orders["fail"]), int(orders.get("status", 500)))
            if "garbage" in orders:
                self.garbage_next(int(orders["garbage"]))
            if "conflict" in orders:
                self.conflict_next(int(orders["conflict"]))
            if "delay_s" in orders:
                self.slow(float(orders["delay_s"]))
        except (ValueError, TypeError, AttributeError):
            return web.json_response({"error": "bad control order"}, status=400)
        logger.warning("LOCAL %s stand-in told to misbehave: %s", self.name, orders)
        return await self.received(request)

    async def received(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "stand_in": self.name,
                "requests": len(self.requests),
                "messages": list(self.messages),
                "faults": {
                    "fail": self._fail,
                    "status": self._fail_status,
                    "garbage": self._garbage,
                    "conflict": self._conflict,
                    "delay_s": self.delay_s,
                },
            }
        )


RECEIVER = web.AppKey("local_receiver", LocalReceiver)


def local_receiver_app(
    name: str,
    record_dir: Path | None = None,
    *,
    token: str | None = None,
    id_field: str = "reference",
) -> web.Application:
    """A LOCAL stand-in receiver as an aiohttp app; its `LocalReceiver` is `app[RECEIVER]`."""
    receiver = LocalReceiver(name, record_dir, token=token, id_field=id_field)
    app = web.Application()
    app[RECEIVER] = receiver
    app.router.add_post("/_local/control", receiver.control)
    app.router.add_get("/_local/received", receiver.received)
    app.router.add_post("/{tail:.*}", receiver.intake)
    return app


@dataclass(frozen=True)
class RunningReceiver:
    receiver: LocalReceiver
    base_url: str

    @property
    def url(self) -> str:
        """Where an adapter posts: the intake path."""
        return self.base_url + INTAKE_PATH


@asynccontextmanager
async def running_local_receiver(
    name: str,
    record_dir: Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    id_field: str = "reference",
) -> AsyncIterator[RunningReceiver]:
    """Serve a LOCAL stand-in on `host` (loopback) and a free port until the block ends."""
    app = local_receiver_app(name, record_dir, token=token, id_field=id_field)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    base_url = f"http://{bound_host}:{bound_port}"
    logger.warning("LOCAL %s stand-in listening on %s (not a real system)", name, base_url)
    try:
        yield RunningReceiver(app[RECEIVER], base_url)
    finally:
        app[RECEIVER].release()
        await runner.cleanup()
