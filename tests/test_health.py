"""/healthz tells the truth before the model is ready and when the database is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import RUNTIME, create_app
from bot.settings import Settings, SettingsError
from store.db import default_sqlite_url


def _settings(tmp_path: Path, models_dir: Path) -> Settings:
    return Settings.from_env(
        env={"ALARMBOT_ENV": "test"},
        var_dir=tmp_path,
        models_dir=models_dir,
        database_url=default_sqlite_url(tmp_path),
        pii_key=b"h" * 32,
    )


async def test_no_model_and_no_migrations_means_503(aiohttp_client, tmp_path: Path) -> None:  # noqa: ANN001
    app = create_app(_settings(tmp_path, tmp_path / "no-models"))
    client = await aiohttp_client(app)
    await app[RUNTIME].ready.wait()
    response = await client.get("/healthz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "error" and body["model"] is None
    assert body["db"] == "not_migrated"
    assert "alarmbot train" in body["error"]

    chat = await client.post("/api/chat", json={"sender": "u1", "text": "救命"})
    assert chat.status == 503
    reply = await chat.json()
    assert reply["error"] == "starting" and "110" in reply["message"]

    metrics = await (await client.get("/metrics")).text()
    assert 'alarmbot_errors_total{kind="model_load"} 1.0' in metrics
    assert "alarmbot_ready 0.0" in metrics


async def test_request_id_is_echoed_or_made(aiohttp_client, tmp_path: Path) -> None:  # noqa: ANN001
    client = await aiohttp_client(create_app(_settings(tmp_path, tmp_path / "no-models")))
    given = await client.get("/healthz", headers={"X-Request-Id": "abcdef123456"})
    assert given.headers["X-Request-Id"] == "abcdef123456"
    hostile = await client.get("/healthz", headers={"X-Request-Id": "x\u200b<script>"})
    assert hostile.headers["X-Request-Id"] != "x\u200b<script>"
    assert len(hostile.headers["X-Request-Id"]) == 16


def test_tf_threads_setting_is_a_positive_whole_number() -> None:
    env = {"ALARMBOT_ENV": "test"}
    assert Settings.from_env(env=env, pii_key=b"h" * 32).tf_threads == 1
    assert (
        Settings.from_env(env={**env, "ALARMBOT_TF_THREADS": "4"}, pii_key=b"h" * 32).tf_threads
        == 4
    )
    for bad in ("0", "-2", "two"):
        with pytest.raises(SettingsError, match="ALARMBOT_TF_THREADS"):
            Settings.from_env(env={**env, "ALARMBOT_TF_THREADS": bad}, pii_key=b"h" * 32)
