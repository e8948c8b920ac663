"""What actions may use. The bot hands in its own; `rasa run actions` builds one from the env."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from routing.registration import RegistrationService, build_registration
from store.citizens import CitizenDirectory
from store.crypto import PiiCipher, resolve_pii_key
from store.db import Database, default_sqlite_url
from store.incidents import IncidentBook
from store.registrations import RegistrationStore


@dataclass
class ActionServices:
    citizens: CitizenDirectory
    incidents: IncidentBook
    registration: RegistrationService
    # Called after a write that queued a handoff, so the relay sends it now (the bot passes
    # the relay's wake-up; a split action server leaves it to the relay's poll).
    handoff_queued: Callable[[], None] = lambda: None

    @classmethod
    def from_database(
        cls,
        db: Database,
        cipher: PiiCipher,
        env: Mapping[str, str] | None = None,
        var_dir: Path = Path("var"),
        handoff_queued: Callable[[], None] | None = None,
    ) -> ActionServices:
        store = RegistrationStore(db, cipher)
        env = os.environ if env is None else env
        return cls(
            citizens=CitizenDirectory(db),
            incidents=IncidentBook(db, cipher),
            registration=build_registration(store, cipher.otp_key, env, var_dir),
            handoff_queued=handoff_queued or (lambda: None),
        )

    async def close(self) -> None:
        """Close the HTTP sessions of the adapters (SMS gateway, identity service)."""
        await self.registration.close()

    @classmethod
    def from_env(cls) -> ActionServices:
        """For a split deployment: the action server reads the same DATABASE_URL and key."""
        var_dir = Path(os.environ.get("ALARMBOT_VAR_DIR", "var"))
        url = os.environ.get("DATABASE_URL") or default_sqlite_url(var_dir)
        allow_dev_key = os.environ.get("ALARMBOT_ENV", "dev") != "prod"
        key = resolve_pii_key(os.environ, var_dir, allow_dev_key=allow_dev_key)
        return cls.from_database(Database(url), PiiCipher(key), os.environ, var_dir)


class UsesServices:
    """Mixin: services injected by the bot, or built lazily when rasa_sdk instantiates us."""

    def __init__(self, services: ActionServices | None = None) -> None:
        self._services = services

    @property
    def services(self) -> ActionServices:
        if self._services is None:
            self._services = ActionServices.from_env()
        return self._services
