"""Checking a name and ID number against the national identity service (公安部身份核验).

That service cannot be reached from here, so it sits behind `IdentityVerifier`:

* `HttpIdentityVerifier` is the shape of a production call: a JSON POST signed with an
  application key, answers mapped to a `Verification`; anything that is not a clear answer
  (timeout, 5xx, unreadable body) is `unavailable`, never `rejected`, so an outage does not
  turn honest citizens away. The request/response fields follow no published contract and
  must be adapted to the real service's specification when it is available.
* `LocalFormatOnlyVerifier` runs only the format and checksum checks of `routing.identity`
  and answers `format_only`: it proves nothing about who the person is, and says so in its
  name, its status and (once) in the log.

Neither implementation logs a name or an ID number.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Protocol

import aiohttp

from routing.identity import IdKind, check_id_document, check_name, shanghai_today

logger = logging.getLogger(__name__)


class VerificationStatus(str, Enum):
    VERIFIED = "verified"  # the service confirmed that name and number belong together
    REJECTED = "rejected"  # the service (or the format check) said they do not
    UNAVAILABLE = "unavailable"  # no answer: try later, do not hold it against the citizen
    FORMAT_ONLY = "format_only"  # only the format was checked, identity unknown


@dataclass(frozen=True)
class Verification:
    """A status and a short machine-readable reason (for logs and the call-taker, not PII)."""

    status: VerificationStatus
    reason: str = ""


class IdentityVerifier(Protocol):
    async def verify(self, name: str, id_kind: IdKind | str, id_number: str) -> Verification:
        """Does `name` belong to document `id_number` of kind `id_kind`?"""
        ...


# Answers of the (assumed) service: {"result": "consistent" | "inconsistent" | "not_found"}.
_RESULTS = {
    "consistent": Verification(VerificationStatus.VERIFIED, "consistent"),
    "inconsistent": Verification(VerificationStatus.REJECTED, "mismatch"),
    "not_found": Verification(VerificationStatus.REJECTED, "no_record"),
}


class HttpIdentityVerifier:
    """POST `{"name", "id_kind", "id_number"}` as JSON to `url`, signed with `app_key`.

    Headers: `X-Timestamp` (epoch seconds), `X-Nonce` (random hex) and `X-Signature`, the
    hex HMAC-SHA256 under `app_key` of `"{timestamp}\\n{nonce}\\n"` followed by the exact
    body bytes, so the service can reject altered and replayed requests.
    """

    def __init__(
        self,
        url: str,
        app_key: str | bytes,
        timeout_s: float = 5.0,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self._key = app_key.encode() if isinstance(app_key, str) else app_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._own_session = session is None
        self._clock = clock

    def sign(self, timestamp: str, nonce: str, body: bytes) -> str:
        """The `X-Signature` value for a request (public so that tests and stubs can check)."""
        message = f"{timestamp}\n{nonce}\n".encode() + body
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    async def verify(self, name: str, id_kind: IdKind | str, id_number: str) -> Verification:
        kind = IdKind(id_kind).value
        payload = {"name": name, "id_kind": kind, "id_number": id_number}
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp, nonce = str(int(self._clock())), secrets.token_hex(16)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Signature": self.sign(timestamp, nonce, body),
        }
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                self.url, data=body, headers=headers, timeout=self._timeout
            ) as response:
                status = response.status
                raw = await response.read()
        except asyncio.TimeoutError:
            return self._unavailable("timeout", kind)
        except aiohttp.ClientError as exc:
            return self._unavailable(f"unreachable:{type(exc).__name__}", kind)
        if status in (401, 403):
            logger.error("identity service refused our credentials (HTTP %s)", status)
            return self._unavailable(f"http_{status}", kind)
        if not 200 <= status < 300:
            return self._unavailable(f"http_{status}", kind)
        try:
            result = json.loads(raw)["result"]
            verification = _RESULTS[result]
        except (ValueError, KeyError, TypeError):
            return self._unavailable("bad_response", kind)
        logger.info("identity check for a %s: %s", kind, verification.status.value)
        return verification

    @staticmethod
    def _unavailable(reason: str, kind: str) -> Verification:
        logger.warning("identity service unavailable for a %s check: %s", kind, reason)
        return Verification(VerificationStatus.UNAVAILABLE, reason)

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None


class LocalFormatOnlyVerifier:
    """Stand-in that checks format and checksum only: `format_only`, never `verified`."""

    def __init__(self, today: Callable[[], date] = shanghai_today) -> None:
        self._today = today
        self._warned = False

    async def verify(self, name: str, id_kind: IdKind | str, id_number: str) -> Verification:
        if not self._warned:
            self._warned = True
            logger.warning(
                "LocalFormatOnlyVerifier: NOT a real identity check; only the format and "
                "checksum of names and ID numbers are checked (no national identity service)"
            )
        name_check = check_name(name)
        if not name_check.ok:
            return Verification(VerificationStatus.REJECTED, f"name_{name_check.reason}")
        id_check = check_id_document(id_number, id_kind, today=self._today())
        if not id_check.ok:
            return Verification(VerificationStatus.REJECTED, f"id_{id_check.reason}")
        return Verification(VerificationStatus.FORMAT_ONLY, "local_format_check_only")
