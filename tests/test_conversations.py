"""Rasa's own conversation tests (data/tests) against the real model, as `rasa test` runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.settings import PROJECT_DIR


def test_conversation_stories_pass(model_path: Path, tmp_path: Path) -> None:
    rasa = Path(sys.executable).with_name("rasa")
    result = subprocess.run(
        [
            str(rasa),
            "test",
            "core",
            "--model",
            str(model_path),
            "--stories",
            str(PROJECT_DIR / "data" / "tests"),
            "--out",
            str(tmp_path),
            "--fail-on-prediction-errors",
        ],
        cwd=PROJECT_DIR,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    failed = tmp_path / "failed_test_stories.yml"
    report = failed.read_text() if failed.exists() else result.stderr[-3000:]
    assert result.returncode == 0, report
