"""Handoff throughput and latency: incidents through the transactional outbox and the relay to
a LOCAL 12345 work-order stand-in, on SQLite and (when ALARMBOT_BENCH_POSTGRES_URL is set)
PostgreSQL.

What is measured (all in one process, the way a worker runs it: `IncidentBook.submit` writes
the incident and its outbox row in one transaction; `OutboxRelay` from `build_relay` claims,
POSTs with the production HTTP adapter, and marks the row sent with the incident's status):

drain      N reports submitted while the relay is stopped, then the relay started: handoffs/s
           of the relay alone (claim → HTTP → mark sent), from start to the last receipt.
saturated  N reports submitted back to back by C concurrent citizens while the relay runs
           (woken on each submit): the throughput of the whole pipeline, database shared.
paced      N reports at a fixed rate (20/s, below capacity, open loop): latency from the
           moment a report is submitted to the stand-in receiving the work order (p50/p99).
           Twice: relay polling every OUTBOX_POLL_S (1 s, how `alarmbot run` behaves today:
           nothing wakes it on submit) and woken by each submit (`relay.wake()`).

It is a measurement, not a test: it prints numbers and exits 0. Only 127.0.0.1 is
contacted. The PostgreSQL database named by ALARMBOT_BENCH_POSTGRES_URL is reset (all tables
dropped and migrated again): give it a database of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chat_latency import mean, percentile  # noqa: E402
from routing.handoff.local_receivers import (  # noqa: E402
    INTAKE_PATH,
    LOCAL_WORKORDER,
    LocalReceiver,
)
from routing.handoff.relay import OutboxRelay  # noqa: E402
from routing.handoff.wiring import build_relay  # noqa: E402
from store import migrate  # noqa: E402
from store.crypto import PiiCipher  # noqa: E402
from store.db import Database, default_sqlite_url  # noqa: E402
from store.incidents import IncidentBook  # noqa: E402
from store.outbox import WORKORDER_12345  # noqa: E402

CIPHER = PiiCipher(b"b" * 32)
DETAILS = {
    "answers": {
        "description": {"answer": "given", "text": "小区快递柜坏了一周，快递员把包裹堆在楼道里"},
        "location": {"answer": "given", "text": "徐汇区漕溪北路100弄"},
        "contact_consent": {"answer": "no"},
    },
    "reasons": ["快递投诉属于12345受理范围"],
}


async def start_receiver() -> tuple[LocalReceiver, web.AppRunner, str]:
    """The LOCAL 12345 stand-in, recording receipt times with time.perf_counter."""
    receiver = LocalReceiver(LOCAL_WORKORDER, None, clock=time.perf_counter)
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.intake)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return receiver, runner, f"http://{host}:{port}{INTAKE_PATH}"


async def new_report(book: IncidentBook, index: int) -> str:
    record = await book.open_draft(
        "web",
        f"bench-{index}",
        route="12345",
        category="courier",
        urgency="low",
        call_110_now=False,
        aggression=False,
        emergency=False,
        verified=True,
        details=DETAILS,
        missing=[],
        completeness=0.8,
        district="徐汇区",
    )
    return record.number


def receipts(receiver: LocalReceiver) -> dict[str, float]:
    """Incident number → when the stand-in first kept its create."""
    found: dict[str, float] = {}
    for request in receiver.requests:
        if request.kept and not request.duplicate and isinstance(request.body, dict):
            found.setdefault(str(request.body.get("工单编号")), request.at)
    return found


async def wait_for(receiver: LocalReceiver, numbers: Sequence[str], timeout_s: float) -> bool:
    wanted = set(numbers)
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if wanted <= receipts(receiver).keys():
            return True
        await asyncio.sleep(0.002)
    return False


def relay_for(db: Database, url: str, poll_s: float) -> OutboxRelay:
    env = {"ALARMBOT_ENV": "dev", "OUTBOX_POLL_S": str(poll_s)}
    return build_relay(db, CIPHER, env, local_urls={WORKORDER_12345: url})


async def drain(db: Database, n: int) -> dict[str, Any]:
    receiver, runner, url = await start_receiver()
    book = IncidentBook(db, CIPHER)
    try:
        numbers = []
        for i in range(n):
            number = await new_report(book, i)
            await book.submit(number)
            numbers.append(number)
        relay = relay_for(db, url, 0.05)
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(relay.run_forever(stop))
        complete = await wait_for(receiver, numbers, timeout_s=120)
        elapsed = max(receipts(receiver).values()) - started if receiver.requests else 0.0
        stop.set()
        await task
        await relay_close(relay)
    finally:
        await runner.cleanup()
    return {
        "n": n,
        "complete": complete,
        "seconds": elapsed,
        "per_s": n / elapsed if elapsed else float("nan"),
        "posts": len(receiver.requests),
    }


async def relay_close(relay: OutboxRelay) -> None:
    for adapter in relay.adapters.values():
        close = getattr(adapter, "close", None)
        if close is not None:
            await close()


async def steady(
    db: Database, n: int, concurrency: int, poll_s: float, wake: bool, rate: float | None
) -> dict[str, Any]:
    """`rate` None: `concurrency` citizens submit back to back (saturated); else reports
    start at `rate` per second whatever happens (open loop), so latency is the pipeline's
    and not a queue's."""
    receiver, runner, url = await start_receiver()
    book = IncidentBook(db, CIPHER)
    relay = relay_for(db, url, poll_s)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run_forever(stop))
    submitted: dict[str, float] = {}

    async def one(index: int) -> None:
        number = await new_report(book, index)
        submitted[number] = time.perf_counter()
        await book.submit(number)
        if wake:
            relay.wake()

    queue = list(range(n))

    async def citizen() -> None:
        while queue:
            await one(queue.pop())

    try:
        started = time.perf_counter()
        if rate is None:
            await asyncio.gather(*(citizen() for _ in range(concurrency)))
        else:
            tasks = []
            for index in range(n):
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(index)))
            await asyncio.gather(*tasks)
        complete = await wait_for(receiver, list(submitted), timeout_s=120)
        got = receipts(receiver)
        stop.set()
        await task
        await relay_close(relay)
    finally:
        await runner.cleanup()
    latencies = [(got[k] - t) * 1000 for k, t in submitted.items() if k in got]
    elapsed = max(got.values()) - started if got else float("nan")
    return {
        "n": n,
        "complete": complete,
        "per_s": len(got) / elapsed if got else float("nan"),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": mean(latencies),
        "max_ms": max(latencies) if latencies else float("nan"),
    }


async def run_backend(name: str, url: str, n: int, concurrency: int, rate: float) -> list[str]:
    if name == "postgresql":
        await asyncio.to_thread(migrate.downgrade, url, "base")
    await asyncio.to_thread(migrate.upgrade, url)
    db = Database(url)
    lines = []
    try:
        d = await drain(db, n)
        lines.append(
            f"{name:10s} {'drain (relay alone)':34s} {d['n']:5d}  {d['per_s']:7.1f} /s"
            f"  ({d['seconds']:.2f} s{'' if d['complete'] else ', INCOMPLETE'})"
        )
        phases = (
            (f"saturated, {concurrency} citizens, woken", True, None),
            (f"{rate:g}/s, relay polls every 1 s", False, rate),
            (f"{rate:g}/s, relay woken on submit", True, rate),
        )
        for label, wake, pace in phases:
            s = await steady(db, n, concurrency, 1.0, wake, pace)
            lines.append(
                f"{name:10s} {label:34s} {s['n']:5d}  {s['per_s']:7.1f} /s"
                f"  submit→receipt p50 {s['p50_ms']:7.1f} ms  p99 {s['p99_ms']:7.1f} ms"
                f"  max {s['max_ms']:7.1f} ms{'' if s['complete'] else '  INCOMPLETE'}"
            )
    finally:
        await db.dispose()
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--handoffs", type=int, default=400, help="reports per phase (400)")
    parser.add_argument("--concurrency", type=int, default=8, help="submitting citizens (8)")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="reports/s in the paced phases (20)"
    )
    return parser.parse_args(argv)


async def main_async(opts: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)
    backends = []
    with tempfile.TemporaryDirectory(prefix="alarmbot-bench-handoff-") as tmp:
        backends.append(("sqlite", default_sqlite_url(Path(tmp))))
        pg = os.environ.get("ALARMBOT_BENCH_POSTGRES_URL")
        if pg:
            backends.append(("postgresql", pg))
        print(
            f"handoff bench: {opts.handoffs} reports per phase, {opts.concurrency} submitting,"
            f" relay batch 8 / concurrency 8, LOCAL 12345 stand-in on 127.0.0.1"
        )
        for name, url in backends:
            for line in await run_backend(name, url, opts.handoffs, opts.concurrency, opts.rate):
                print(line, flush=True)
        if not pg:
            print("postgresql skipped: set ALARMBOT_BENCH_POSTGRES_URL (a database of its own)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
