from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.cli import quiet_third_parties

quiet_third_parties()  # before Rasa is imported

from bot.model import train_if_needed  # noqa: E402
from bot.settings import PROJECT_DIR  # noqa: E402
from store import migrate  # noqa: E402
from store.db import Database, default_sqlite_url  # noqa: E402
from tests.support import Clock, ServerThread, make_settings  # noqa: E402

MODELS_DIR = Path(os.environ.get("ALARMBOT_TEST_MODELS_DIR", PROJECT_DIR / "models"))


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The real model for the current data, trained once and cached by data fingerprint."""
    path, _ = train_if_needed(PROJECT_DIR, MODELS_DIR)
    return path


@pytest.fixture(scope="session")
def live_server(model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """One running server (SQLite) shared by the end-to-end tests."""
    settings = make_settings(tmp_path_factory.mktemp("live"), model_path.parent)
    server = ServerThread(settings).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_server_url(live_server: ServerThread) -> str:
    return live_server.url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("ALARMBOT_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("ALARMBOT_TEST_POSTGRES_URL not set (make test starts a local PostgreSQL)")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a fresh SQLite file, or the test PostgreSQL reset to base."""
    if request.param == "sqlite":
        url = default_sqlite_url(tmp_path)
    else:
        url = request.getfixturevalue("postgres_url")
        migrate.downgrade(url, "base")
    migrate.upgrade(url)
    return url


@pytest.fixture
async def db(database_url: str):  # noqa: ANN201
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> Clock:
    """Shared by a test's book, outbox, relay and supervisor: time moves only when told."""
    return Clock()
