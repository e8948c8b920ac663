"""Personal data typed by a citizen never reaches the logs or the database in clear."""

from __future__ import annotations

import logging
import sqlite3

import aiohttp

from bot.app import SETTINGS
from bot.observability import configure_logging
from tests.fakes import fake_identity


async def test_personal_data_is_not_logged_nor_stored_in_clear(live_server, capfd) -> None:  # noqa: ANN001
    person = fake_identity(seed=7)
    text = f"我叫{person.name}，身份证{person.id_number}，电话{person.phone}"
    configure_logging("INFO", "json")
    try:
        async with aiohttp.ClientSession() as http:
            body = {"sender": "privacy-1", "text": text}
            async with http.post(f"{live_server.url}/api/chat", json=body) as response:
                assert response.status == 200
    finally:
        logging.getLogger().handlers.clear()
    out, err = capfd.readouterr()
    logged = out + err
    assert "POST /api/chat 200" in logged, logged[-3000:]
    for secret in (person.name, person.id_number, person.phone):
        assert secret not in logged

    database = live_server.app[SETTINGS].database_url.split("///", 1)[1]
    with sqlite3.connect(database) as conn:
        for table, column in [
            ("messages", "content_sealed"),
            ("tracker_events", "data_sealed"),
        ]:
            blobs = [row[0] for row in conn.execute(f"SELECT {column} FROM {table}")]  # noqa: S608
            assert blobs
            for secret in (person.name, person.id_number, person.phone):
                assert all(secret.encode() not in blob for blob in blobs), (table, secret)
