"""WeChat channel configuration from the environment; the channel is off without a token."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_API_BASE = "https://api.weixin.qq.com/cgi-bin/"
LOCAL_API = "local"  # WECHAT_API_BASE_URL=local: the LOCAL fake API in this process (dev)


class WeChatConfigError(ValueError):
    """A WECHAT_* variable is wrong; the message names it."""


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise WeChatConfigError(f"{name} must be a number, got {raw!r}") from exc
    if value < 0:
        raise WeChatConfigError(f"{name} must not be negative")
    return value


@dataclass(frozen=True)
class WeChatConfig:
    token: str
    encoding_aes_key: str = field(default="", repr=False)
    app_id: str = ""
    app_secret: str = field(default="", repr=False)
    timestamp_window_s: float = 300  # 0 turns the replay-window check off
    reply_budget_s: float = 3.0  # then `success` at once and the customer-service API
    api_base_url: str = DEFAULT_API_BASE
    api_timeout_s: float = 5.0
    max_body_bytes: int = 64 * 1024  # a text push is under 4 KB; safe mode adds a third
    dedup_ttl_s: float = 600  # WeChat retries within ~15 s; keep keys well beyond that
    redis_url: str = ""
    # Status updates outside the 48-hour window: the mini-program subscribe message template
    # (unset: such updates wait as notices), the page it opens and its one text field.
    subscribe_template_id: str = ""
    subscribe_page: str = "pages/incidents/index"
    subscribe_field: str = "thing1"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WeChatConfig | None:
        """None when WECHAT_TOKEN is unset: no /wechat route at all."""
        token = env.get("WECHAT_TOKEN", "")
        if not token:
            return None
        aes_key = env.get("WECHAT_ENCODING_AES_KEY", "")
        if aes_key:
            try:
                if len(aes_key) != 43 or len(base64.b64decode(aes_key + "=")) != 32:
                    raise ValueError
            except (ValueError, binascii.Error) as exc:
                raise WeChatConfigError(
                    "WECHAT_ENCODING_AES_KEY must be the 43 characters shown by WeChat"
                ) from exc
            if not env.get("WECHAT_APP_ID"):
                raise WeChatConfigError("safe mode (WECHAT_ENCODING_AES_KEY) needs WECHAT_APP_ID")
        api_base = env.get("WECHAT_API_BASE_URL", "") or DEFAULT_API_BASE
        app_id, app_secret = env.get("WECHAT_APP_ID", ""), env.get("WECHAT_APP_SECRET", "")
        if api_base == LOCAL_API:
            if env.get("ALARMBOT_ENV", "dev") == "prod":
                raise WeChatConfigError("WECHAT_API_BASE_URL=local is for development only")
            app_id, app_secret = app_id or "wxLOCALdev", app_secret or "local-dev-secret"
        budget = _number(env, "WECHAT_REPLY_BUDGET_S", 3.0)
        if budget > 4.5:
            raise WeChatConfigError("WECHAT_REPLY_BUDGET_S must leave WeChat's 5 s: at most 4.5")
        return cls(
            token=token,
            encoding_aes_key=aes_key,
            app_id=app_id,
            app_secret=app_secret,
            timestamp_window_s=_number(env, "WECHAT_TIMESTAMP_WINDOW_S", 300),
            reply_budget_s=budget,
            api_base_url=api_base,
            redis_url=env.get("REDIS_URL", ""),
            subscribe_template_id=env.get("WECHAT_SUBSCRIBE_TEMPLATE_ID", ""),
            subscribe_page=env.get("WECHAT_SUBSCRIBE_PAGE", "") or cls.subscribe_page,
            subscribe_field=env.get("WECHAT_SUBSCRIBE_FIELD", "") or cls.subscribe_field,
        )

    @property
    def can_send(self) -> bool:
        """Customer-service messages and media downloads need the app's id and secret."""
        return bool(self.app_id and self.app_secret)
