"""Signed links for mediators: an SMS carries a link, never the report or the reporter.

A token is `<assignment id>.<expiry, unix seconds>.<signature>`, the signature being
HMAC-SHA256 over `mediator-link:v1:<id>:<expiry>` (base64url, first 16 bytes: a link fits an
SMS). It proves we issued the link for that assignment and that it has not expired; what
the page behind it shows is decided there (masked contact until the mediator accepts).

The key is `ALARMBOT_LINK_KEY` when set (any string of 32+ characters), else derived from
the PII key: rotating the PII key then invalidates the links, which is the safe direction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from store.crypto import PiiCipher

LINK_PATH = "/m/"
SIGNATURE_BYTES = 16
MIN_KEY_CHARS = 32


class BadLink(ValueError):
    """The token is malformed, forged or expired."""


@dataclass(frozen=True)
class LinkClaim:
    assignment_id: int
    expires_at: datetime


def link_key(env: Mapping[str, str], cipher: PiiCipher) -> bytes:
    """The signing key: ALARMBOT_LINK_KEY, else one derived from the PII key (an HMAC of a
    fixed label under its look-up hash key, so the key itself never leaves `PiiCipher`)."""
    configured = env.get("ALARMBOT_LINK_KEY", "")
    if configured:
        if len(configured) < MIN_KEY_CHARS:
            raise ValueError(f"ALARMBOT_LINK_KEY must be at least {MIN_KEY_CHARS} characters")
        return configured.encode("utf-8")
    return bytes.fromhex(cipher.lookup_hash("alarmbot mediator links v1", "key-derivation"))


def _signature(key: bytes, assignment_id: int, expires: int) -> str:
    message = f"mediator-link:v1:{assignment_id}:{expires}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()[:SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_link(key: bytes, assignment_id: int, expires_at: datetime) -> str:
    expires = int(expires_at.timestamp())
    return f"{assignment_id}.{expires}.{_signature(key, assignment_id, expires)}"


def verify_link(key: bytes, token: str, now: datetime) -> LinkClaim:
    """The claim in `token`, or `BadLink`; compares signatures in constant time."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise BadLink("malformed")
    assignment_id, expires = int(parts[0]), int(parts[1])
    if not hmac.compare_digest(parts[2], _signature(key, assignment_id, expires)):
        raise BadLink("bad signature")
    expires_at = datetime.fromtimestamp(expires, timezone.utc)
    if now >= expires_at:
        raise BadLink("expired")
    return LinkClaim(assignment_id, expires_at)


def mediator_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{LINK_PATH}{token}"
