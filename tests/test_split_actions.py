"""A split deployment: actions in `rasa run actions`, the bot calling them over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from tests.support import ServerThread, make_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def action_server(tmp_path: Path):  # noqa: ANN201
    port = _free_port()
    rasa = Path(sys.executable).with_name("rasa")
    env = {**os.environ, "ALARMBOT_VAR_DIR": str(tmp_path), "RASA_TELEMETRY_ENABLED": "false"}
    process = subprocess.Popen(
        [str(rasa), "run", "actions", "--actions", "actions", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"action server exited: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("action server did not start within 120 s")
    yield f"http://127.0.0.1:{port}/webhook"
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:  # sanic's graceful shutdown can hang on open sockets
        process.kill()
        process.wait(5)


async def test_custom_action_runs_in_a_separate_action_server(
    model_path: Path, tmp_path: Path, action_server: str
) -> None:
    settings = make_settings(tmp_path, model_path.parent)
    server = ServerThread(replace(settings, action_endpoint_url=action_server)).start()
    try:
        async with aiohttp.ClientSession() as http:
            body = {"sender": "split-1", "text": "你好"}
            async with http.post(f"{server.url}/api/chat", json=body) as response:
                assert response.status == 200
                reply = await response.json()
    finally:
        server.stop()
    assert "实名登记" in reply["messages"][0]["text"], "action_greet ran over HTTP"
