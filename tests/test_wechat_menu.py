"""`alarmbot wechat menu`: the official account's menu, created through the real WeChat client
against the LOCAL fake API (or printed with --dry-run)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.channels.wechat.handler import MENU, menu_definition
from bot.channels.wechat.local import LocalWeChatApi
from bot.cli import main
from store import migrate
from store.db import default_sqlite_url


def test_every_menu_button_is_a_key_the_handler_maps() -> None:
    buttons = menu_definition()["button"]
    assert [b["name"] for b in buttons] == ["我要报警", "我的报警", "个人信息"]
    assert all(b["type"] == "click" and b["key"] in MENU for b in buttons)
    assert [MENU[b["key"]] for b in buttons] == [MENU[b["name"]] for b in buttons]


def test_dry_run_prints_the_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wechat", "menu", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out) == menu_definition()


@pytest.fixture
def wechat_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = default_sqlite_url(tmp_path)
    migrate.upgrade(url)
    for name, value in {
        "ALARMBOT_ENV": "test",
        "ALARMBOT_VAR_DIR": str(tmp_path),
        "ALARMBOT_PII_KEY": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
        "DATABASE_URL": url,
        "WECHAT_TOKEN": "t",
        "WECHAT_APP_ID": "wxLOCALmenu",
    }.items():
        monkeypatch.setenv(name, value)
    return url


async def test_menu_is_created_through_the_api(
    wechat_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = await LocalWeChatApi().start()
    try:
        monkeypatch.setenv("WECHAT_API_BASE_URL", api.url)
        monkeypatch.setenv("WECHAT_APP_SECRET", "local-secret")
        assert await asyncio.to_thread(main, ["wechat", "menu"]) == 0
        assert api.menus == [menu_definition()]
        assert "菜单已创建：我要报警 / 我的报警 / 个人信息" in capsys.readouterr().out
        api.fail_next = 10  # WeChat down: a clear error, a non-zero exit
        assert await asyncio.to_thread(main, ["wechat", "menu"]) == 1
        assert "menu create failed" in capsys.readouterr().err
    finally:
        await api.stop()


def test_without_the_app_secret_it_says_what_is_missing(
    wechat_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["wechat", "menu"]) == 2
    assert "WECHAT_APP_SECRET" in capsys.readouterr().err
