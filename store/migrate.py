"""Alembic driven from code, so `alarmbot db ...` needs no alembic.ini in the working dir.

Alembic's env.py runs its own event loop, so these are synchronous and must be called
outside a running loop (the CLI, or `asyncio.to_thread`).
"""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str, stdout=None) -> Config:  # noqa: ANN001 - a text stream
    config = Config(stdout=stdout) if stdout is not None else Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "-1") -> None:
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str:
    """The applied revision(s) as text, e.g. '0001_initial (head)'."""
    buffer = io.StringIO()
    command.current(alembic_config(url, stdout=buffer))
    return buffer.getvalue().strip() or "(none: database not migrated)"


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


async def applied_revision(db) -> str | None:  # noqa: ANN001 - store.db.Database
    """The revision the database is at, read through the app's own async engine."""
    from alembic.runtime.migration import MigrationContext

    async with db.engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
