"""Append-only audit trail for operator and system actions."""

from __future__ import annotations

from typing import Any

from store.db import Database
from store.models import AuditEntry


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        actor: str,
        action: str,
        target_type: str | None = None,
        target_id: str | None = None,
        **details: Any,
    ) -> None:
        async with self._db.session() as session:
            session.add(
                AuditEntry(
                    actor=actor,
                    action=action,
                    target_type=target_type,
                    target_id=target_id,
                    details=details,
                )
            )
