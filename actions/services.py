"""What actions may use. The bot hands in its own; `rasa run actions` builds one from the env."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from store.citizens import CitizenDirectory
from store.db import Database, default_sqlite_url


@dataclass
class ActionServices:
    citizens: CitizenDirectory

    @classmethod
    def from_database(cls, db: Database) -> ActionServices:
        return cls(citizens=CitizenDirectory(db))

    @classmethod
    def from_env(cls) -> ActionServices:
        """For a split deployment: the action server reads the same DATABASE_URL as the bot."""
        var_dir = Path(os.environ.get("ALARMBOT_VAR_DIR", "var"))
        url = os.environ.get("DATABASE_URL") or default_sqlite_url(var_dir)
        return cls.from_database(Database(url))


class UsesServices:
    """Mixin: services injected by the bot, or built lazily when rasa_sdk instantiates us."""

    def __init__(self, services: ActionServices | None = None) -> None:
        self._services = services

    @property
    def services(self) -> ActionServices:
        if self._services is None:
            self._services = ActionServices.from_env()
        return self._services
