"""Outbound WeChat API (customer-service and subscribe messages, media, mini-program
sign-in, the menu) through wechatpy's WeChatClient.

wechatpy is synchronous (requests) and waits forever by default, so every call runs in a
thread with a timeout, transient failures are retried, and the access token lives in storage
shared by all workers, refreshed by one worker at a time under a lease.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage

from bot.channels.wechat.config import WeChatConfig
from store.wechat import KeyStore

logger = logging.getLogger(__name__)

T = TypeVar("T")
TOKEN_MARGIN_S = 300  # refresh this long before WeChat's expiry
LEASE_S = 15  # one worker refreshes the token; the others wait at most this long
TRANSIENT_ERRCODES = {-1, 45009}  # system busy; API rate (retry later)
RETRIES = 3


class WeChatApiError(Exception):
    """An outbound call failed for good; the message carries no personal data. `errcode` is
    WeChat's own code when it answered one (e.g. 40029: a wx.login code that is not valid)."""

    def __init__(self, message: str, errcode: int | None = None) -> None:
        super().__init__(message)
        self.errcode = errcode


@dataclass(frozen=True)
class MiniProgramLogin:
    """What `jscode2session` vouches for; the session_key is for our store only."""

    openid: str
    session_key: str = field(repr=False)


class SharedKeys(Protocol):
    """Synchronous keys with a TTL (called from wechatpy's threads)."""

    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str, ttl_s: float) -> None: ...
    def add(self, key: str, ttl_s: float) -> bool: ...
    def delete(self, key: str) -> None: ...


class DatabaseKeys:
    """`store.wechat.KeyStore` (async) used from a worker thread via the server's loop."""

    def __init__(self, keys: KeyStore, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self._keys = keys
        self._loop = loop
        self._timeout = timeout_s

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(self._timeout)

    def get(self, key: str) -> str | None:
        return self._run(self._keys.get(key))

    def set(self, key: str, value: str, ttl_s: float) -> None:
        self._run(self._keys.set(key, value, ttl_s))

    def add(self, key: str, ttl_s: float) -> bool:
        return self._run(self._keys.add(key, ttl_s))

    def delete(self, key: str) -> None:
        self._run(self._keys.delete(key))


class RedisKeys:
    """The same on Redis (REDIS_URL), for deployments that have it."""

    def __init__(self, url: str, prefix: str = "alarmbot:wechat:") -> None:
        import redis  # only when configured

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix

    def get(self, key: str) -> str | None:
        value = self._redis.get(self._prefix + key)
        return value.decode() if value is not None else None

    def set(self, key: str, value: str, ttl_s: float) -> None:
        self._redis.set(self._prefix + key, value, ex=max(1, int(ttl_s)))

    def add(self, key: str, ttl_s: float) -> bool:
        return bool(self._redis.set(self._prefix + key, "1", ex=max(1, int(ttl_s)), nx=True))

    def delete(self, key: str) -> None:
        self._redis.delete(self._prefix + key)


class SharedSession(SessionStorage):
    """wechatpy's session interface over shared keys; values are JSON like wechatpy's own."""

    def __init__(self, keys: SharedKeys) -> None:
        self.keys = keys

    def get(self, key: str, default: Any = None) -> Any:  # noqa: ANN401 - wechatpy's contract
        value = self.keys.get(key)
        return json.loads(value) if value is not None else default

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:  # noqa: ANN401
        if value is None:
            return
        if key.endswith("_access_token") and ttl:
            ttl = max(60, ttl - TOKEN_MARGIN_S)
        self.keys.set(key, json.dumps(value), ttl or 7200)

    def delete(self, key: str) -> None:
        self.keys.delete(key)


class _TimeoutHttp(requests.Session):
    """requests with a default timeout: wechatpy's token fetch passes none."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout = timeout_s

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # noqa: ANN401
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().request(*args, **kwargs)


class SharedTokenClient(WeChatClient):
    """A WeChatClient whose token is read from shared storage and refreshed under a lease."""

    def __init__(self, config: WeChatConfig, keys: SharedKeys) -> None:
        super().__init__(
            config.app_id,
            config.app_secret,
            session=SharedSession(keys),
            timeout=config.api_timeout_s,
        )
        self.API_BASE_URL = config.api_base_url
        self._http = _TimeoutHttp(config.api_timeout_s)
        self._keys = keys
        self._lease_key = f"{config.app_id}_token_lease"

    @property
    def root_url(self) -> str:
        """https://api.weixin.qq.com/ (the API base without cgi-bin/): where sns/ lives."""
        base = self.API_BASE_URL
        return base[: -len("cgi-bin/")] if base.endswith("cgi-bin/") else base

    def code_to_session(self, js_code: str) -> dict[str, Any]:
        """sns/jscode2session: needs the app secret, not an access token (wechatpy's own
        version fetches one for nothing, and calls the real WeChat whatever the base)."""
        params = {
            "appid": self.appid,
            "secret": self.secret,
            "js_code": js_code,
            "grant_type": "authorization_code",
        }
        response = self._http.get(self.root_url + "sns/jscode2session", params=params)
        try:
            response.raise_for_status()
        except requests.RequestException as exc:
            raise WeChatClientException(
                None, None, client=self, request=exc.request, response=exc.response
            ) from exc
        return self._handle_result(response)

    def fetch_access_token(self) -> dict[str, Any]:
        return self._fetch_access_token(
            url=self.API_BASE_URL + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )

    @property
    def access_token(self) -> str:
        token = self.session.get(self.access_token_key)
        if token:
            return token
        deadline = time.monotonic() + LEASE_S
        while time.monotonic() < deadline:
            if self._keys.add(self._lease_key, LEASE_S):
                try:
                    token = self.session.get(self.access_token_key)  # refreshed meanwhile?
                    if not token:
                        self.fetch_access_token()
                        token = self.session.get(self.access_token_key)
                    return token
                finally:
                    self._keys.delete(self._lease_key)
            time.sleep(0.05)
            token = self.session.get(self.access_token_key)
            if token:
                return token
        raise WeChatApiError("no access token: another worker's refresh did not finish")


def _transient(exc: Exception) -> bool:
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    if isinstance(exc, WeChatClientException):
        if exc.errcode in TRANSIENT_ERRCODES:
            return True
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        return exc.errcode is None and (status is None or status >= 500)
    return False


class WeChatApi:
    """Async facade: each call in a thread, retried with backoff on transient errors."""

    def __init__(self, client: SharedTokenClient, retries: int = RETRIES) -> None:
        self.client = client
        self._retries = retries

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        delay = 0.2
        for attempt in range(1, self._retries + 1):
            try:
                return await asyncio.to_thread(fn)
            except Exception as exc:
                if attempt == self._retries or not _transient(exc):
                    errcode = exc.errcode if isinstance(exc, WeChatClientException) else None
                    raise WeChatApiError(
                        f"{what} failed: {type(exc).__name__} {errcode or ''}".strip(), errcode
                    ) from exc
                logger.warning("wechat %s: transient %s, retrying", what, type(exc).__name__)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def send_text(self, openid: str, text: str) -> None:
        """A customer-service message (within 48 h of the citizen's last message)."""
        await self._call("custom send", lambda: self.client.message.send_text(openid, text))

    async def send_subscribe(
        self, openid: str, template_id: str, data: dict[str, Any], page: str = ""
    ) -> None:
        """A subscribe message (message/subscribe/send): one per grant the user gave."""
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": data}
        if page:
            body["page"] = page
        await self._call(
            "subscribe send", lambda: self.client.post("message/subscribe/send", data=body)
        )

    async def code_to_session(self, js_code: str) -> MiniProgramLogin:
        """The openid behind a mini-program's wx.login code (each code works once)."""
        answer = await self._call("jscode2session", lambda: self.client.code_to_session(js_code))
        openid, session_key = answer.get("openid"), answer.get("session_key")
        if not isinstance(openid, str) or not openid or not isinstance(session_key, str):
            raise WeChatApiError("jscode2session answered without openid or session_key")
        return MiniProgramLogin(openid, session_key)

    async def create_menu(self, menu: dict[str, Any]) -> None:
        """The official account's menu (menu/create): replaces the current one."""
        await self._call("menu create", lambda: self.client.menu.create(menu))

    async def download_media(self, media_id: str) -> tuple[bytes, str]:
        """(bytes, MIME type) of a temporary media file."""

        def fetch() -> tuple[bytes, str]:
            response = self.client.media.download(media_id)
            if not isinstance(response, requests.Response):  # JSON without errcode: not media
                raise WeChatApiError("media get answered JSON, not a file")
            mime = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            return response.content, mime

        return await self._call("media get", fetch)


def build_api(config: WeChatConfig, keys: KeyStore) -> WeChatApi | None:
    """None without WECHAT_APP_ID/WECHAT_APP_SECRET: replies then only go passively."""
    if not config.can_send:
        return None
    if config.redis_url:
        shared: SharedKeys = RedisKeys(config.redis_url)
    else:
        shared = DatabaseKeys(keys, asyncio.get_running_loop(), config.api_timeout_s + LEASE_S)
    return WeChatApi(SharedTokenClient(config, shared))
