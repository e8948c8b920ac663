"""Mini-program sign-in: the openid WeChat vouched for (`jscode2session`), and our own
session tokens for it.

A token is 32 random bytes handed to the mini-program once; only its SHA-256 is stored, so a
copy of the database cannot be replayed as a citizen. WeChat's session_key is sealed and
never leaves this module.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select

from store.crypto import PiiCipher
from store.db import Database
from store.models import MiniProgramSession, MiniProgramUser, as_utc, utcnow
from store.wechat import dialect_insert

SESSION_TTL = timedelta(days=7)
_SESSION_KEY = "miniprogram_users.session_key"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


class MiniProgramSessions:
    def __init__(
        self,
        db: Database,
        cipher: PiiCipher,
        now: Callable[[], datetime] = utcnow,
        ttl: timedelta = SESSION_TTL,
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._clock = now
        self.ttl = ttl

    def _now(self) -> datetime:
        return self._clock().astimezone(timezone.utc)

    async def sign_in(self, openid: str, session_key: str) -> IssuedToken:
        """Keep the user's latest session_key and issue a new token for `ttl`."""
        now = self._now()
        sealed = self._cipher.seal(session_key, f"{_SESSION_KEY}:{openid}")
        upsert = (
            dialect_insert(self._db)(MiniProgramUser)
            .values(openid=openid, session_key_sealed=sealed, created_at=now, last_login_at=now)
            .on_conflict_do_update(
                index_elements=[MiniProgramUser.openid],
                set_={"session_key_sealed": sealed, "last_login_at": now},
            )
        )
        token = secrets.token_urlsafe(32)
        expires = now + self.ttl
        async with self._db.session() as session:
            await session.execute(upsert)
            session.add(
                MiniProgramSession(
                    token_hash=token_hash(token), openid=openid, created_at=now, expires_at=expires
                )
            )
            # Expired tokens of this user go as they sign in again: the table stays small.
            await session.execute(
                delete(MiniProgramSession)
                .where(MiniProgramSession.openid == openid, MiniProgramSession.expires_at <= now)
                .execution_options(synchronize_session=False)
            )
        return IssuedToken(token, expires)

    async def openid_for(self, token: str) -> str | None:
        """The openid a live token belongs to, else None (unknown, expired or signed out)."""
        if not token or len(token) > 200:
            return None
        query = select(MiniProgramSession.openid, MiniProgramSession.expires_at).where(
            MiniProgramSession.token_hash == token_hash(token)
        )
        async with self._db.reader() as session:
            row = (await session.execute(query)).first()
        if row is None or as_utc(row.expires_at) <= self._now():
            return None
        return row.openid

    async def sign_out(self, token: str) -> bool:
        """The token stops working at once (a shared phone, a lost one); True if it existed."""
        async with self._db.session() as session:
            gone = await session.execute(
                delete(MiniProgramSession)
                .where(MiniProgramSession.token_hash == token_hash(token))
                .execution_options(synchronize_session=False)
            )
        return bool(gone.rowcount)

    async def session_key(self, openid: str) -> str | None:
        """The sealed session_key opened, for checking data the mini-program signed."""
        query = select(MiniProgramUser.session_key_sealed).where(MiniProgramUser.openid == openid)
        async with self._db.reader() as session:
            sealed = (await session.execute(query)).scalar_one_or_none()
        return None if sealed is None else self._cipher.open(sealed, f"{_SESSION_KEY}:{openid}")
