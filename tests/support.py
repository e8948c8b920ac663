"""A real alarmbot server on a loopback port, in a thread with its own event loop; a settable
clock for the store and handoff tests."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from aiohttp import web

from bot.app import RUNTIME, create_app
from bot.settings import Settings
from store import migrate
from store.db import Database, default_sqlite_url

# /wechat on every test server, with wechatpy's published test credentials; the replay window
# is off so that their 2014 test vector passes (tests/test_wechat_protocol.py checks the window).
WECHAT_TEST_ENV = {
    "WECHAT_TOKEN": "123456",
    "WECHAT_ENCODING_AES_KEY": "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
    "WECHAT_APP_ID": "wx49f0ab532d5d035a",
    "WECHAT_TIMESTAMP_WINDOW_S": "0",
}


START = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)  # a Monday, 10:00 in Shanghai


class Clock:
    """A settable clock shared by stores, relays and supervisors: tests move time, never wait
    (the `clock` fixture in conftest.py starts one at START)."""

    def __init__(self, moment: datetime = START) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


def cli_env(var_dir: Path, models_dir: Path) -> dict[str, str]:
    """The environment for running `alarmbot` as a process: its own var dir and SQLite
    database, the given models, a fixed throwaway PII key."""
    return {
        "ALARMBOT_ENV": "test",
        "ALARMBOT_VAR_DIR": str(var_dir),
        "ALARMBOT_MODELS_DIR": str(models_dir),
        "ALARMBOT_PII_KEY": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
        "DATABASE_URL": f"sqlite:///{var_dir}/cli.db",
    }


def make_settings(
    var_dir: Path,
    models_dir: Path,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    """Test settings: own var dir and database, a fixed throwaway key, migrations applied;
    `env` adds to (or overrides) the test environment."""
    settings = Settings.from_env(
        env={"ALARMBOT_ENV": "test", **WECHAT_TEST_ENV, **(env or {})},
        var_dir=var_dir,
        models_dir=models_dir,
        database_url=database_url or default_sqlite_url(var_dir),
        pii_key=b"k" * 32,
    )
    # Alembic runs its own event loop: keep it off the caller's (async tests have one).
    with ThreadPoolExecutor(1) as pool:
        pool.submit(migrate.upgrade, Database(settings.database_url).url).result()
    return settings


class ServerThread:
    """Serves `create_app(settings)` like `alarmbot run` does, until `stop()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = replace(settings, port=0)
        self.app: web.Application | None = None
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self, timeout: float = 180) -> ServerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout)
        runtime = self.app[RUNTIME]
        if runtime.dialogue is None:
            self.stop()
            raise RuntimeError(f"model failed to load: {runtime.load_error}")
        return self

    async def _start(self) -> None:
        self.app = create_app(self.settings)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        await self.app[RUNTIME].ready.wait()

    def call(self, coroutine, timeout: float = 60):  # noqa: ANN001, ANN201
        """Run a coroutine on the server's loop (to read its database, say)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
