"""The operator's CLI, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import cli_env

ALARMBOT = [sys.executable, "-m", "bot.cli"]


def run(args: list[str], env: dict[str, str], stdin: str = "", timeout: float = 300):  # noqa: ANN201
    return subprocess.run(
        ALARMBOT + args,
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=timeout,
    )


@pytest.fixture
def env(tmp_path: Path, model_path: Path) -> dict[str, str]:
    return cli_env(tmp_path, model_path.parent)


@pytest.mark.parametrize("args", [[], ["run"], ["train"], ["chat"], ["db"], ["db", "upgrade"]])
def test_help_everywhere(args: list[str], env: dict[str, str]) -> None:
    result = run([*args, "--help"], env)
    assert result.returncode == 0
    assert "usage: alarmbot" in result.stdout


def test_db_upgrade_current_downgrade(env: dict[str, str]) -> None:
    assert "not migrated" in run(["db", "current"], env).stdout
    upgraded = run(["db", "upgrade"], env)
    assert upgraded.returncode == 0 and "数据库已升级" in upgraded.stdout
    assert "(head)" in run(["db", "current"], env).stdout
    assert run(["db", "downgrade", "base"], env).returncode == 0
    assert "not migrated" in run(["db", "current"], env).stdout


def test_errors_are_one_clear_line_and_a_non_zero_exit(env: dict[str, str]) -> None:
    unknown = run(["fly"], env)
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr

    prod_without_key = run(
        ["db", "current"], {**env, "ALARMBOT_ENV": "prod", "ALARMBOT_PII_KEY": ""}
    )
    assert prod_without_key.returncode == 1
    assert "ALARMBOT_PII_KEY" in prod_without_key.stderr
    assert "Traceback" not in prod_without_key.stderr

    bad_port = run(["db", "current"], {**env, "ALARMBOT_PORT": "eighty"})
    assert bad_port.returncode == 1 and "配置错误" in bad_port.stderr

    no_model = run(
        ["chat"], {**env, "ALARMBOT_MODELS_DIR": str(Path(env["ALARMBOT_VAR_DIR"]) / "none")}
    )
    assert no_model.returncode == 1 and "模型加载失败" in no_model.stderr


def test_train_skips_when_the_data_did_not_change(env: dict[str, str]) -> None:
    result = run(["train"], env)
    assert result.returncode == 0 and "模型已是最新" in result.stdout


def test_terminal_chat_goes_through_the_web_path(env: dict[str, str]) -> None:
    assert run(["db", "upgrade"], env).returncode == 0
    result = run(["chat", "--sender", "cli-test"], env, stdin="你好\n3\n/quit\n")
    assert result.returncode == 0, result.stderr
    assert "助手：您好" in result.stdout
    assert "[1] 我要报警" in result.stdout
    assert "拨打110" in result.stdout, "button 3 (怎么使用) was sent as its payload"


def test_triage_one_text(env: dict[str, str]) -> None:
    result = run(["triage", "楼下有人拿刀砍人，快来"], env)
    assert result.returncode == 0, result.stderr
    assert "去向：110警情" in result.stdout
    assert "立即拨打110：是" in result.stdout


def test_triage_jsonl_reports_a_broken_line_and_goes_on(
    env: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": "a", "text": "物业不管电梯坏了"}\n'
        "{not json\n"
        '{"id": "c", "text": "邻居家漏水，吵了几句没动手"}\n',
        encoding="utf-8",
    )
    result = run(["triage", "--jsonl", str(source)], env)
    assert result.returncode == 1
    assert "第2行" in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row.get("id") for row in rows] == ["a", None, "c"]
    assert rows[1] == {"line": 2, "error": "invalid_line"}
    assert {"route", "category", "aggression", "urgency", "confidence", "call_110_now"} <= set(
        rows[0]
    )


def test_keyword_baseline_needs_no_model(env: dict[str, str]) -> None:
    result = run(["triage", "--keywords-only", "小区有群租房"], env)
    assert result.returncode == 0 and "线索举报" in result.stdout


def test_outbox_list_and_retry_a_dead_handoff(env: dict[str, str]) -> None:
    import asyncio

    from store.crypto import PiiCipher, decode_key
    from store.db import Database
    from store.incidents import IncidentBook
    from store.outbox import Outbox

    assert run(["db", "upgrade"], env).returncode == 0

    async def give_up_on_one() -> tuple[str, int]:
        db = Database(env["DATABASE_URL"])
        cipher = PiiCipher(decode_key(env["ALARMBOT_PII_KEY"]))
        record = await IncidentBook(db, cipher).open_draft(
            "web",
            "cli-outbox",
            route="police",
            category="assault",
            urgency="immediate",
            call_110_now=True,
            aggression=True,
            emergency=True,
            verified=False,
            details={},
            missing=["location"],
            completeness=0.2,
            status="received",
        )
        outbox = Outbox(db, cipher)
        [claimed] = await outbox.claim_due("cli-test", limit=1)
        await outbox.mark_dead(claimed, "CAD answered 400 three times")
        await db.dispose()
        return record.number, claimed.id

    number, item_id = asyncio.run(give_up_on_one())
    listed = run(["outbox", "list", "--status", "dead"], env)
    assert listed.returncode == 0, listed.stderr
    assert number in listed.stdout and "dead：1" in listed.stdout and "400" in listed.stdout
    assert run(["outbox", "retry", str(item_id)], env).returncode == 0
    again = run(["outbox", "retry", str(item_id)], env)
    assert again.returncode == 1 and "不是失败" in again.stderr
    assert "pending：1" in run(["outbox", "list"], env).stdout


@pytest.mark.parametrize("which", ["heldout", "dev"])
def test_eval_writes_the_report_and_sends_no_police_case_elsewhere(
    env: dict[str, str], tmp_path: Path, which: str
) -> None:
    """The acceptance targets, held by the trained model on every labelled set we have: a
    data or policy change that sends one police case elsewhere fails here."""
    out = tmp_path / "reports"
    result = run(["eval", "--set", which, "--out", str(out)], env)
    assert result.returncode == 0, result.stderr
    report = (out / "triage.md").read_text(encoding="utf-8")
    for chart in ("triage_route_model", "triage_route_keywords", "triage_category_model"):
        assert (out / f"{chart}.png").read_bytes().startswith(b"\x89PNG")
    assert "| file | cases |" in report and "## Every misroute" in report
    model_line = next(line for line in result.stdout.splitlines() if line.startswith("model"))
    assert "police sent elsewhere 0," in model_line, model_line
    keywords_line = next(line for line in result.stdout.splitlines() if line.startswith("keyw"))
    assert "police sent elsewhere" in keywords_line
    if which == "heldout":
        route = float(model_line.split("route ")[1].split("%")[0])
        category = float(model_line.split("category ")[1].split("%")[0])
        assert route >= 95.0 and category >= 85.0, model_line
