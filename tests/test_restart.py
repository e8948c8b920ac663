"""Stop the server mid-conversation, start it again: the conversation goes on."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import aiohttp
import pytest

from bot.app import RUNTIME
from store.citizens import conversation_key
from tests.support import ServerThread, cli_env, make_settings


async def _say(url: str, body: dict) -> dict:
    body = {"sender": "restart-1", **body}
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/chat", json=body) as r:
        assert r.status == 200
        return await r.json()


async def test_conversation_survives_a_restart(model_path, tmp_path) -> None:  # noqa: ANN001
    settings = make_settings(tmp_path, model_path.parent)
    first = ServerThread(settings).start()
    try:
        await _say(first.url, {"text": "你好"})
        await _say(first.url, {"payload": "/help"})
    finally:
        first.stop()

    second = ServerThread(settings).start()
    try:
        await _say(second.url, {"payload": "/goodbye"})
        tracker = second.call(
            second.app[RUNTIME].dialogue.agent.tracker_store.retrieve(
                conversation_key("web", "restart-1")
            )
        )
    finally:
        second.stop()
    intents = [e.intent_name for e in tracker.events if e.type_name == "user"]
    assert intents == ["greet", "help", "goodbye"], "one session, nothing lost, nothing restarted"
    assert sum(e.type_name == "session_started" for e in tracker.events) == 1


async def test_server_process_exits_on_sigterm_after_answering(model_path, tmp_path) -> None:  # noqa: ANN001
    """`alarmbot run` stops on SIGTERM (a deploy, Ctrl-C) once its background loops ran: they
    used to keep aiohttp's shutdown waiting for its full minute."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, **cli_env(tmp_path, model_path.parent)}
    subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env, check=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(240):
                try:
                    async with http.get(f"{url}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
            else:
                pytest.fail("the server never became healthy")
        await _say(url, {"text": "我的电动车在楼下被偷了"})  # queues a handoff, wakes the relay
        server.send_signal(signal.SIGTERM)
        # Not a speed check: far more than a clean stop needs, far less than the old minute.
        _, stderr = server.communicate(timeout=55)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
