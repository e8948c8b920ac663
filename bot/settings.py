"""Configuration from environment variables, with safe local defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.channels.wechat.config import WeChatConfig, WeChatConfigError
from store.crypto import resolve_pii_key
from store.db import default_sqlite_url

PROJECT_DIR = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("dev", "test", "prod")


class SettingsError(ValueError):
    """A configuration value is missing or wrong; the message says which and how to fix it."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    env: str = "dev"
    host: str = "127.0.0.1"
    port: int = 8080
    project_dir: Path = PROJECT_DIR
    var_dir: Path = PROJECT_DIR / "var"
    models_dir: Path = PROJECT_DIR / "models"
    model_path: Path | None = None
    database_url: str = ""
    action_endpoint_url: str | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    max_text_chars: int = 2000
    tf_threads: int = 1
    pii_key: bytes = field(default=b"", repr=False)
    wechat: WeChatConfig | None = None  # the /wechat channel, when WECHAT_TOKEN is set

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        environment = env.get("ALARMBOT_ENV", "dev")
        if environment not in ENVIRONMENTS:
            raise SettingsError(f"ALARMBOT_ENV must be one of {', '.join(ENVIRONMENTS)}")
        project_dir = Path(env.get("ALARMBOT_PROJECT_DIR", PROJECT_DIR))
        var_dir = Path(env.get("ALARMBOT_VAR_DIR", project_dir / "var"))
        log_format = env.get("ALARMBOT_LOG_FORMAT", "text")
        if log_format not in ("text", "json"):
            raise SettingsError("ALARMBOT_LOG_FORMAT must be 'text' or 'json'")
        values: dict[str, object] = {
            "env": environment,
            "host": env.get("ALARMBOT_HOST", "127.0.0.1"),
            "port": _int(env, "ALARMBOT_PORT", 8080),
            "project_dir": project_dir,
            "var_dir": var_dir,
            "models_dir": Path(env.get("ALARMBOT_MODELS_DIR", project_dir / "models")),
            "model_path": Path(env["ALARMBOT_MODEL"]) if env.get("ALARMBOT_MODEL") else None,
            "database_url": env.get("DATABASE_URL") or default_sqlite_url(var_dir),
            "action_endpoint_url": env.get("ALARMBOT_ACTION_ENDPOINT") or None,
            "log_level": env.get("ALARMBOT_LOG_LEVEL", "INFO").upper(),
            "log_format": log_format,
            "max_text_chars": _int(env, "ALARMBOT_MAX_TEXT_CHARS", 2000),
            "tf_threads": _int(env, "ALARMBOT_TF_THREADS", 1),
        }
        try:
            values["wechat"] = WeChatConfig.from_env(env)
        except WeChatConfigError as exc:
            raise SettingsError(str(exc)) from exc
        if int(values["tf_threads"]) < 1:  # type: ignore[call-overload]
            raise SettingsError("ALARMBOT_TF_THREADS must be at least 1")
        values.update(overrides)
        if "pii_key" not in values:
            values["pii_key"] = resolve_pii_key(
                env, Path(values["var_dir"]), allow_dev_key=environment != "prod"
            )
        return cls(**values)  # type: ignore[arg-type]
