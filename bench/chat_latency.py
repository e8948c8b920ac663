"""Chat latency, throughput, CPU, cold start and memory: alarmbot vs. stock Rasa, side by side.

What is compared
    alarmbot  `alarmbot run`: one aiohttp process; Rasa agent in process, custom actions run
              in process (`bot.dialogue.InProcessActions`), Rasa's per-call jsonschema
              re-check replaced by a prebuilt validator (`bot.rasa_patches`), our async SQL
              tracker store with sealed events, on a fresh SQLite database.
    stock     the same model served the way Rasa ships it: `rasa run --enable-api` (REST
              channel, SQL tracker store on SQLite) plus `rasa run actions` (the rasa_sdk
              action server over HTTP) running our own `actions` package on its own
              freshly migrated SQLite database.

Why
    The issue asks whether running everything in one process is worth it. Both sides get
    the same model, the same two message kinds and the same client on the same machine:

    custom    "你好" (text, goes through NLU) → rule → `action_greet`, one DB read.
    button    "/greet" (a button's payload, intent given) → rule → `action_greet`: most
              turns of a report are button presses that run a form's custom action.
    response  "/help" (payload, intent given) → rule → `utter_help`, no custom action.

How (fairness on a small, possibly shared machine)
    The servers are started one after the other, so a cold start never overlaps other work
    of ours. Both then stay up, but only one is ever under load: the sequential and the
    concurrent phases alternate between them in blocks (A B B A …), so background noise
    and drift hit both sides alike. Besides wall-clock latency the server-side CPU time
    per message is measured (per thread, from /proc/PID/task/*/schedstat), which is far
    less sensitive to noisy neighbours than latency is.

It is a measurement, not a test: it exits 0 when a target is missed, non-zero only when a
server does not start (its log tail is printed). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

PROJECT_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
KINDS = ("custom", "button", "response")
SENDER_GROUP = 5  # messages per sender before a new one: trackers stay small
SEQ_BLOCK = 20  # sequential messages per turn before switching to the other server
START_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 30.0
HEALTH_POLL_S = 0.1
MB = 1_000_000

# Targets from the issue.
TARGET_RATIO = 0.5  # alarmbot p50 ≤ 0.5 × stock p50
TARGET_CUSTOM_P50_MS = 15.0
TARGET_COLD_START_S = 15.0
TARGET_RSS_MB = 1500.0  # 1.5 GB (10^9 bytes), peak RSS of the alarmbot process tree

# The responses each kind must produce, so a fast error is not mistaken for a fast answer.
EXPECTED_RESPONSES = {
    "custom": ("utter_greet_registered", "utter_greet_unregistered"),
    "button": ("utter_greet_registered", "utter_greet_unregistered"),
    "response": ("utter_help",),
}

QUIET_ENV = {
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
    "PYTHONUNBUFFERED": "1",
}


class StartError(RuntimeError):
    """A server (or its migration) did not come up; the message carries its log tail."""


# ── processes ──────────────────────────────────────────────────────────────────────────


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    pids: list[int] = field(default_factory=list)  # the tree, resolved once it is ready

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        kept = [line for line in text.splitlines() if "/healthz" not in line]  # our polling
        return "\n".join(kept[-lines:])


class Children:
    """Every process we start, each in its own process group; `stop_all` is idempotent."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str], cwd: Path) -> Child:
        log = cwd / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(argv),
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, proc, log)
        self._children.append(child)
        return child

    def stop(self, child: Child, grace_s: float = 10.0) -> None:
        if child.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=grace_s)
        # The group may outlive its leader (workers, loaders): always sweep it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(timeout=5)
        if child in self._children:
            self._children.remove(child)

    def stop_all(self) -> None:
        for child in list(reversed(self._children)):
            self.stop(child)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's env minus anything that would reconfigure alarmbot, plus ours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ALARMBOT_") and k not in ("DATABASE_URL", "PYTHONPATH")
    }
    env.update(QUIET_ENV)
    env["PYTHONPATH"] = str(PROJECT_DIR)  # `import actions` from any cwd
    env.update(extra)
    return env


def run_checked(name: str, argv: Sequence[str], env: dict[str, str], cwd: Path) -> None:
    try:
        result = subprocess.run(
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise StartError(f"{name}: timed out after {START_TIMEOUT_S:.0f} s") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise StartError(f"{name}: exit code {result.returncode}\n{tail}")


# ── /proc: process trees, memory, CPU ──────────────────────────────────────────────────


def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(pid: int) -> list[int]:
    tree, seen, todo = _children_of(), [], [pid]
    while todo and len(seen) < 1000:
        current = todo.pop()
        seen.append(current)
        todo.extend(tree.get(current, []))
    return seen


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Rss:
    current_mb: float
    peak_mb: float
    processes: int


def tree_rss(pid: int) -> Rss:
    """VmRSS and VmHWM summed over the tree (the peak sum is an upper bound)."""
    pids = process_tree(pid)
    current = sum(_status_kb(p, "VmRSS") for p in pids)
    peak = sum(_status_kb(p, "VmHWM") for p in pids)
    return Rss(current * 1024 / MB, peak * 1024 / MB, len(pids))


def cpu_seconds(pids: Sequence[int]) -> float:
    """On-CPU time of every live thread of `pids`, nanosecond resolution (schedstat)."""
    total = 0
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


# ── client ─────────────────────────────────────────────────────────────────────────────


@dataclass
class Sample:
    kind: str
    seconds: float
    ok: bool
    cpu_s: dict[str, float] = field(default_factory=dict)  # server CPU per process


@dataclass
class Server:
    """One side: how to reach it, how each kind is encoded, and what it measured."""

    name: str
    chat_url: str
    encode: Callable[[str, str], dict[str, Any]]
    replies: Callable[[Any], list[str]]
    children: list[Child]
    cold_start_s: dict[str, float]
    seq: list[Sample] = field(default_factory=list)
    conc: list[Sample] = field(default_factory=list)
    conc_wall_s: float = 0.0
    conc_cpu_s: float = 0.0
    warmup_errors: int = 0
    expected: dict[str, frozenset[str]] = field(default_factory=dict)

    def answered(self, kind: str, data: Any) -> bool:
        """Any reply text of the kind's responses (any non-empty text if none are known)."""
        texts, wanted = [t for t in self.replies(data) if t], self.expected.get(kind)
        return any(t in wanted for t in texts) if wanted else bool(texts)

    def cpu(self) -> dict[str, float]:
        return {child.name: cpu_seconds(child.pids) for child in self.children}


MESSAGES = {"custom": "你好", "button": "/greet", "response": "/help"}


def alarmbot_body(sender: str, kind: str) -> dict[str, Any]:
    key = "text" if kind == "custom" else "payload"
    return {"sender": sender, key: MESSAGES[kind]}


def stock_body(sender: str, kind: str) -> dict[str, Any]:
    return {"sender": sender, "message": MESSAGES[kind]}


def alarmbot_texts(data: Any) -> list[str]:
    return [str(m.get("text") or "") for m in data.get("messages", [])]


def stock_texts(data: Any) -> list[str]:
    return [str(m.get("text") or "") for m in data] if isinstance(data, list) else []


async def send(http: aiohttp.ClientSession, server: Server, sender: str, kind: str) -> Sample:
    started = time.perf_counter()
    ok = False
    try:
        async with http.post(server.chat_url, json=server.encode(sender, kind)) as response:
            data = await response.json(content_type=None)
            ok = response.status == 200 and server.answered(kind, data)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        ok = False
    return Sample(kind, time.perf_counter() - started, ok)


def kind_for(index: int) -> str:
    return KINDS[index % len(KINDS)]


def sender_for(prefix: str, index: int) -> str:
    return f"{prefix}-{index // SENDER_GROUP}"


async def sequential(
    http: aiohttp.ClientSession, server: Server, indexes: range, prefix: str, cpu: bool
) -> list[Sample]:
    """One message at a time; with `cpu`, the server's CPU time is read around each one."""
    samples: list[Sample] = []
    for i in indexes:
        before = server.cpu() if cpu else {}
        sample = await send(http, server, sender_for(prefix, i), kind_for(i))
        if cpu:
            after = server.cpu()
            sample.cpu_s = {name: after[name] - before[name] for name in after}
        samples.append(sample)
    return samples


async def concurrent(
    http: aiohttp.ClientSession, server: Server, total: int, clients: int, prefix: str
) -> tuple[list[Sample], float]:
    """`clients` workers share `total` messages; each worker has its own senders."""
    samples: list[Sample] = []
    remaining = [total]

    async def worker(w: int) -> None:
        k = 0
        while remaining[0] > 0:
            remaining[0] -= 1
            samples.append(await send(http, server, sender_for(f"{prefix}-w{w}", k), kind_for(k)))
            k += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    return samples, time.perf_counter() - started


async def wait_ready(http: aiohttp.ClientSession, url: str, child: Child, started: float) -> float:
    """Seconds from `started` until GET url answers 200; StartError on exit or timeout."""
    deadline = started + START_TIMEOUT_S
    while time.perf_counter() < deadline:
        if child.proc.poll() is not None:
            raise StartError(
                f"{child.name} exited with code {child.proc.returncode}\n{child.tail()}"
            )
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                if response.status == 200:
                    return time.perf_counter() - started
                body = await response.text()
                if '"status": "error"' in body or '"status":"error"' in body:
                    raise StartError(f"{child.name}: {body}\n{child.tail()}")  # load failed
        await asyncio.sleep(HEALTH_POLL_S)
    raise StartError(f"{child.name}: not ready after {START_TIMEOUT_S:.0f} s\n{child.tail()}")


# ── starting the two sides ─────────────────────────────────────────────────────────────


def migrate(env: dict[str, str], cwd: Path) -> None:
    run_checked("alarmbot db upgrade", [str(VENV_BIN / "alarmbot"), "db", "upgrade"], env, cwd)


def db_env(var_dir: Path, model: Path) -> dict[str, str]:
    var_dir.mkdir(parents=True, exist_ok=True)
    return child_env(
        {
            "ALARMBOT_VAR_DIR": str(var_dir),
            "DATABASE_URL": f"sqlite+aiosqlite:///{var_dir / 'alarmbot.db'}",
            "ALARMBOT_MODEL": str(model),
            "ALARMBOT_ENV": "dev",
        }
    )


async def start_alarmbot(
    http: aiohttp.ClientSession, children: Children, work: Path, model: Path
) -> Server:
    cwd = work / "alarmbot"
    env = db_env(cwd / "var", model)
    migrate(env, cwd)
    port = free_port()
    started = time.perf_counter()
    child = children.start(
        "alarmbot", [str(VENV_BIN / "alarmbot"), "run", "--port", str(port)], env, cwd
    )
    base = f"http://127.0.0.1:{port}"
    cold = await wait_ready(http, f"{base}/healthz", child, started)
    return Server(
        "alarmbot", f"{base}/api/chat", alarmbot_body, alarmbot_texts, [child], {"total": cold}
    )


def write_stock_config(cwd: Path, action_port: int) -> tuple[Path, Path]:
    endpoints = cwd / "endpoints.yml"
    endpoints.write_text(
        f"action_endpoint:\n  url: http://127.0.0.1:{action_port}/webhook\n"
        "tracker_store:\n  type: SQL\n  dialect: sqlite\n"
        f"  db: {cwd / 'stock-tracker.db'}\n"
    )
    # Without a credentials file `rasa run` falls back to the interactive cmdline channel.
    credentials = cwd / "credentials.yml"
    credentials.write_text("rest:\n")
    return endpoints, credentials


async def start_stock(
    http: aiohttp.ClientSession, children: Children, work: Path, model: Path
) -> Server:
    """Both stock processes start at once (as a deployment would); ready = both answer."""
    cwd = work / "stock"
    env = db_env(cwd / "var", model)  # the action server reads citizens from this DB
    migrate(env, cwd)
    rasa_port, action_port = free_port(), free_port()
    endpoints, credentials = write_stock_config(cwd, action_port)
    rasa = str(VENV_BIN / "rasa")
    started = time.perf_counter()
    actions = children.start(
        "stock-actions",
        [rasa, "run", "actions", "--actions", "actions", "--port", str(action_port)],
        env,
        cwd,
    )
    core = children.start(
        "stock-rasa",
        [
            rasa,
            "run",
            "--enable-api",
            "-m",
            str(model),
            "--port",
            str(rasa_port),
            "--endpoints",
            str(endpoints),
            "--credentials",
            str(credentials),
        ],  # fmt: skip
        env,
        cwd,
    )
    base = f"http://127.0.0.1:{rasa_port}"
    action_s, core_s = await asyncio.gather(
        wait_ready(http, f"http://127.0.0.1:{action_port}/health", actions, started),
        wait_ready(http, f"{base}/status", core, started),
    )
    return Server(
        "stock",
        f"{base}/webhooks/rest/webhook",
        stock_body,
        stock_texts,
        [core, actions],
        {"total": max(action_s, core_s), "rasa": core_s, "actions": action_s},
    )


# ── the run ────────────────────────────────────────────────────────────────────────────


@dataclass
class Options:
    messages: int
    concurrency: int
    concurrent_messages: int
    rounds: int
    warmup: int
    validation_calls: int
    expected: dict[str, frozenset[str]] = field(default_factory=dict)


def abba(servers: Sequence[Server], turn: int) -> Sequence[Server]:
    """A B, then B A, …: neither side always goes first after the other one's load."""
    return servers if turn % 2 == 0 else list(reversed(servers))


async def start_and_warm(
    http: aiohttp.ClientSession,
    starter: Callable[..., Awaitable[Server]],
    children: Children,
    work: Path,
    model: Path,
    opts: Options,
    prefix: str,
) -> Server:
    print(
        f"→ starting {starter.__name__.removeprefix('start_')} (load avg {loadavg():.2f})",
        flush=True,
    )
    server = await starter(http, children, work, model)
    server.expected = opts.expected
    for child in server.children:
        child.pids = process_tree(child.proc.pid)
    warm = await sequential(http, server, range(opts.warmup), f"{prefix}-{server.name}-w", False)
    server.warmup_errors = sum(not s.ok for s in warm)
    if warm and server.warmup_errors == len(warm):
        print(f"  ! {server.name}: every warm-up reply was wrong or failed", file=sys.stderr)
    print(f"  ready in {server.cold_start_s['total']:.1f} s, warmed up", flush=True)
    return server


async def run_sequential(
    http: aiohttp.ClientSession, servers: Sequence[Server], opts: Options, prefix: str
) -> None:
    done = {server.name: 0 for server in servers}
    turn = 0
    while any(n < opts.messages for n in done.values()):
        for server in abba(servers, turn):
            start = done[server.name]
            stop = min(start + SEQ_BLOCK, opts.messages)
            server.seq += await sequential(
                http, server, range(start, stop), f"{prefix}-{server.name}-s", True
            )
            done[server.name] = stop
        turn += 1


async def run_concurrent(
    http: aiohttp.ClientSession, servers: Sequence[Server], opts: Options, prefix: str
) -> None:
    per_round = [
        opts.concurrent_messages // opts.rounds + (r < opts.concurrent_messages % opts.rounds)
        for r in range(opts.rounds)
    ]
    for turn, count in enumerate(per_round):
        if count == 0:
            continue
        for server in abba(servers, turn):
            before = sum(server.cpu().values())
            samples, wall = await concurrent(
                http, server, count, opts.concurrency, f"{prefix}-{server.name}-c{turn}"
            )
            server.conc_cpu_s += sum(server.cpu().values()) - before
            server.conc += samples
            server.conc_wall_s += wall


async def run_bench(opts: Options, children: Children, work: Path, model: Path) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=max(opts.concurrency, 1) * 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        servers = [
            await start_and_warm(http, start_alarmbot, children, work, model, opts, prefix),
            await start_and_warm(http, start_stock, children, work, model, opts, prefix),
        ]
        load_before = loadavg()
        print(f"→ sequential: {opts.messages} messages each, alternating in blocks", flush=True)
        await run_sequential(http, servers, opts, prefix)
        print(f"→ concurrent: {opts.concurrent_messages} messages each", flush=True)
        await run_concurrent(http, servers, opts, prefix)
        load_after = loadavg()
        results = {server.name: report_side(server) for server in servers}
    results["meta"] = {
        "model": model.name,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "messages": opts.messages,
        "concurrency": opts.concurrency,
        "concurrent_messages": opts.concurrent_messages,
        "rounds": opts.rounds,
        "warmup": opts.warmup,
        "sender_group": SENDER_GROUP,
        "seq_block": SEQ_BLOCK,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    return results


# ── statistics ─────────────────────────────────────────────────────────────────────────


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (q in 0..100); nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def summarize(samples: Sequence[Sample]) -> dict[str, Any]:
    ms = [s.seconds * 1000 for s in samples]
    result: dict[str, Any] = {
        "n": len(ms),
        "errors": sum(not s.ok for s in samples),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "mean_ms": mean(ms),
    }
    measured = [s for s in samples if s.cpu_s]
    names = measured[0].cpu_s if measured else {}
    result["cpu_ms"] = mean([sum(s.cpu_s.values()) * 1000 for s in measured])
    result["cpu_ms_by_process"] = {n: mean([s.cpu_s[n] * 1000 for s in measured]) for n in names}
    return result


def report_side(server: Server) -> dict[str, Any]:
    rss = {child.name: asdict(tree_rss(child.proc.pid)) for child in server.children}
    sequential = {"all": summarize(server.seq)}
    for kind in KINDS:
        sequential[kind] = summarize([s for s in server.seq if s.kind == kind])
    wall, count = server.conc_wall_s, len(server.conc)
    return {
        "cold_start_s": server.cold_start_s,
        "warmup_errors": server.warmup_errors,
        "sequential": sequential,
        "concurrent": {
            **summarize(server.conc),
            "wall_s": wall,
            "throughput_msg_s": count / wall if wall > 0 else float("nan"),
            "cpu_ms": server.conc_cpu_s * 1000 / count if count else float("nan"),
        },
        "rss": rss,
        "rss_total": {
            "current_mb": sum(r["current_mb"] for r in rss.values()),
            "peak_mb": sum(r["peak_mb"] for r in rss.values()),
        },
    }


# ── schema-validation fix in isolation ─────────────────────────────────────────────────


def realistic_action_result() -> dict[str, Any]:
    """Exactly what rasa_sdk returns for `action_greet`: one templated response."""
    from rasa_sdk.executor import CollectingDispatcher

    dispatcher = CollectingDispatcher()
    dispatcher.utter_message(response="utter_greet_unregistered")
    return {"events": [], "responses": dispatcher.messages}


def time_calls(fn: Callable[[], object], calls: int) -> float:
    """µs per call, median of 5 batches (robust to a noisy neighbour)."""
    batch = max(calls // 5, 1)
    per_call: list[float] = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(batch):
            fn()
        per_call.append((time.perf_counter() - started) / batch * 1e6)
    return statistics.median(per_call)


def bench_validation(calls: int) -> dict[str, float]:
    os.environ.update(QUIET_ENV)
    from rasa.core.actions.action import RemoteAction

    from bot import rasa_patches

    action = RemoteAction("action_greet", None)
    result = realistic_action_result()
    stock = rasa_patches.stock_action_validation()
    stock_us = time_calls(lambda: stock(action, result), calls)
    rasa_patches.install_fast_action_validation()
    patched_us = time_calls(lambda: action._validate_action_result(result), calls)
    return {"calls": calls, "stock_us": stock_us, "patched_us": patched_us}


# ── report ─────────────────────────────────────────────────────────────────────────────


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs and theirs == theirs else "-"


def rows(results: dict[str, Any]) -> Iterator[tuple[str, float, float, str]]:
    """(label, alarmbot, stock, format) for each line of the table."""
    a, s = results["alarmbot"], results["stock"]
    clients = results["meta"]["concurrency"]
    yield "cold start, s", a["cold_start_s"]["total"], s["cold_start_s"]["total"], ".1f"
    for kind in ("all", *KINDS):
        for stat in ("p50", "p95", "p99", "mean"):
            key = f"{stat}_ms"
            label = f"seq {kind:<8} {stat}, ms"
            yield label, a["sequential"][kind][key], s["sequential"][kind][key], ".1f"
    for kind in KINDS:
        label = f"server CPU/msg {kind}, ms"
        yield label, a["sequential"][kind]["cpu_ms"], s["sequential"][kind]["cpu_ms"], ".1f"
    ac, sc = a["concurrent"], s["concurrent"]
    conc = f"conc x{clients}"
    yield f"{conc} throughput, msg/s", ac["throughput_msg_s"], sc["throughput_msg_s"], ".1f"
    for stat in ("p50", "p95", "p99"):
        yield f"{conc} {stat}, ms", ac[f"{stat}_ms"], sc[f"{stat}_ms"], ".1f"
    yield f"{conc} server CPU/msg, ms", ac["cpu_ms"], sc["cpu_ms"], ".1f"
    ar, sr = a["rss_total"], s["rss_total"]
    yield "RSS current (tree sum), MB", ar["current_mb"], sr["current_mb"], ".0f"
    yield "RSS peak (tree sum), MB", ar["peak_mb"], sr["peak_mb"], ".0f"


def errors(side: dict[str, Any]) -> int:
    return int(side["sequential"]["all"]["errors"] + side["concurrent"]["errors"])


def targets(results: dict[str, Any]) -> list[tuple[str, bool]]:
    a, s = results["alarmbot"], results["stock"]
    p50, stock_p50 = a["sequential"]["all"]["p50_ms"], s["sequential"]["all"]["p50_ms"]
    custom = a["sequential"]["custom"]["p50_ms"]
    cold, rss = a["cold_start_s"]["total"], a["rss_total"]["peak_mb"]
    return [
        (
            f"p50 ≤ {TARGET_RATIO}× stock p50 (sequential, mixed): {p50:.1f} ms, "
            f"limit {TARGET_RATIO * stock_p50:.1f} ms (stock {stock_p50:.1f} ms)",
            p50 <= TARGET_RATIO * stock_p50,
        ),
        (
            f"custom-action p50 ≤ {TARGET_CUSTOM_P50_MS:.0f} ms on SQLite: {custom:.1f} ms",
            custom <= TARGET_CUSTOM_P50_MS,
        ),
        (f"cold start ≤ {TARGET_COLD_START_S:.0f} s: {cold:.1f} s", cold <= TARGET_COLD_START_S),
        (f"RSS ≤ 1.5 GB (peak, tree): {rss:.0f} MB", rss <= TARGET_RSS_MB),
    ]


def stock_breakdown(s: dict[str, Any]) -> str:
    cs = s["cold_start_s"]
    cpu = s["sequential"]["custom"]["cpu_ms_by_process"]
    rss = ", ".join(
        f"{name} {r['current_mb']:.0f}/{r['peak_mb']:.0f} MB" for name, r in s["rss"].items()
    )
    return (
        f"stock parts: ready rasa {cs['rasa']:.1f} s, actions {cs['actions']:.1f} s; "
        f"CPU/custom msg {', '.join(f'{n} {v:.1f} ms' for n, v in cpu.items())}; "
        f"RSS {rss} (current/peak)"
    )


def render(results: dict[str, Any]) -> str:
    a, s, meta = results["alarmbot"], results["stock"], results["meta"]
    lines = [
        f"alarmbot vs stock Rasa — model {meta['model']}, {meta['cpus']} CPUs, "
        f"sequential {meta['messages']} msgs, concurrent {meta['concurrent_messages']} msgs "
        f"x{meta['concurrency']} clients, warm-up {meta['warmup']} (per server)",
        f"{'':<34}{'alarmbot':>10}{'stock':>10}{'ratio':>8}",
    ]
    for label, ours, theirs, fmt in rows(results):
        lines.append(f"{label:<34}{ours:>10{fmt}}{theirs:>10{fmt}}{ratio(ours, theirs):>8}")
    lines.append(f"{'errors (wrong/failed replies)':<34}{errors(a):>10}{errors(s):>10}")
    lines.append(stock_breakdown(s))
    lines.append(
        f"load avg (1 min) before/after the measured phases: "
        f"{meta['loadavg_before']:.2f} / {meta['loadavg_after']:.2f}"
    )
    lines.append("")
    lines.append("targets (issue):")
    for text, ok in targets(results):
        lines.append(f"  [{'PASS' if ok else 'MISS'}] {text}")
    validation = results.get("validation")
    if validation:
        lines.append("")
        lines.append(
            f"schema validation of an action response (RemoteAction._validate_action_result, "
            f"{validation['calls']} calls each):"
        )
        lines.append(f"  stock   {validation['stock_us']:>10.1f} µs/call")
        lines.append(
            f"  patched {validation['patched_us']:>10.1f} µs/call  "
            f"({validation['stock_us'] / validation['patched_us']:.0f}x faster)"
        )
    return "\n".join(lines)


# ── main ───────────────────────────────────────────────────────────────────────────────


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Latency, throughput, CPU, cold start and RSS of alarmbot vs stock `rasa run` + "
            "`rasa run actions`, same model, never both under load at once."
        )
    )
    parser.add_argument("--messages", type=int, default=200, help="sequential messages per server")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    parser.add_argument(
        "--concurrent-messages",
        type=int,
        help="messages per server in the concurrent phase (default: --messages)",
    )
    parser.add_argument(
        "--rounds", type=int, default=4, help="concurrent phase split into this many A/B rounds"
    )
    parser.add_argument("--warmup", type=int, default=20, help="warm-up messages per server")
    parser.add_argument(
        "--validation-calls",
        type=int,
        default=1000,
        help="calls per variant in the schema-validation section (0 skips it)",
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (40 msgs, x4)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the scratch dir and logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.concurrency, args.warmup, args.rounds = 40, 4, 10, 2
        args.validation_calls = min(args.validation_calls, 100)
    if args.concurrent_messages is None:
        args.concurrent_messages = args.messages
    for name in ("messages", "concurrency", "concurrent_messages", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.validation_calls < 0:
        parser.error("--warmup and --validation-calls must not be negative")
    return args


def ensure_model() -> Path:
    os.environ.update(QUIET_ENV)
    from bot.model import train_if_needed

    path, trained = train_if_needed(PROJECT_DIR, PROJECT_DIR / "models")
    print(f"model: {path.name}{' (trained now)' if trained else ''}", flush=True)
    return path


def expected_texts(domain_file: Path) -> dict[str, frozenset[str]]:
    """Reply texts per kind, read from domain.yml (what the model was just trained on)."""
    import yaml

    responses = (yaml.safe_load(domain_file.read_text(encoding="utf-8")) or {}).get("responses")
    result: dict[str, frozenset[str]] = {}
    for kind, names in EXPECTED_RESPONSES.items():
        variants = [v for name in names for v in (responses or {}).get(name) or []]
        result[kind] = frozenset(
            str(v["text"]) for v in variants if isinstance(v, dict) and v.get("text")
        )
        if not result[kind]:
            print(
                f"  ! no texts for {', '.join(names)} in {domain_file.name}: "
                f"any non-empty reply counts as correct for '{kind}'",
                file=sys.stderr,
            )
    return result


def _raise_on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    opts = Options(
        args.messages,
        args.concurrency,
        args.concurrent_messages,
        args.rounds,
        args.warmup,
        args.validation_calls,
    )
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    work = Path(tempfile.mkdtemp(prefix="alarmbot-bench-"))
    for sub in ("alarmbot", "stock"):
        (work / sub).mkdir()
    children = Children()
    try:
        model = ensure_model()
        opts.expected = expected_texts(PROJECT_DIR / "domain.yml")
        results = asyncio.run(run_bench(opts, children, work, model))
        children.stop_all()
        if opts.validation_calls:
            print("→ schema validation in isolation", flush=True)
            results["validation"] = bench_validation(opts.validation_calls)
    except StartError as exc:
        print(f"\nFAILED to start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        children.stop_all()
        if args.keep_tmp:
            print(f"scratch dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
