"""Async engine and sessions (SQLAlchemy 1.4 in 2.0 style) for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import AsyncAdaptedQueuePool


def default_sqlite_url(var_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{(var_dir / 'alarmbot.db').resolve()}"


def normalise_url(url: str) -> str:
    """Accept the URLs operators type (postgres://, sqlite:///) and pick the async driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}.get(
        parsed.drivername
    )
    return str(parsed.set(drivername=driver)) if driver else url


def redact_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _tune_sqlite(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
    """WAL lets readers run beside the single writer; the busy timeout absorbs short waits."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """Owns the engine; hand it around instead of reaching for a module-level global."""

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict = {"future": True, "echo": echo, "pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite and parsed.database not in (None, "", ":memory:"):
            # SQLAlchemy 1.4 gives aiosqlite files a NullPool: a new connection, thread and
            # PRAGMA round per session, ~3 ms a message. Keep a few open instead.
            kwargs.update(poolclass=AsyncAdaptedQueuePool, pool_size=5, max_overflow=5)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _tune_sqlite)
        self._sessions = sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False, future=True
        )
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work that may write: commits on success, rolls back on error.

        SQLite has one writer at a time and makes the others wait in its busy handler, which
        sleeps in growing steps (up to 100 ms): under concurrent load that turned into
        second-long tails. Queuing this process's writers on a lock is fair and immediate.
        """
        if self._write_lock is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work; on SQLite (WAL) it runs beside the writer."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """As `session`, without the ORM: for the statements of every message (tracker,
        transcript), where the ORM's unit of work cost ~0.3 ms of CPU a turn for nothing."""
        if self._write_lock is None:
            async with self.engine.begin() as connection:
                yield connection
            return
        async with self._write_lock, self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """As `reader`, without the ORM."""
        async with self.engine.begin() as connection:
            yield connection

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:  # any driver error means "not ready"
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()

    def redacted_url(self) -> str:
        return redact_url(self.url)
