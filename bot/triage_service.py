"""The trained NLU model plus `routing.triage`, for the CLI, evaluation and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rasa.core.agent import Agent

from bot.rasa_patches import install_all
from nlu.text import normalise
from routing.triage import Decision, ModelReading, triage


@dataclass
class TriageService:
    """Loads the model once (a few seconds); then a decision costs one NLU parse (~10 ms)."""

    agent: Agent

    @classmethod
    def load(cls, model_path: Path, tf_threads: int = 1) -> TriageService:
        install_all(tf_threads)
        return cls(Agent.load(str(model_path)))

    async def read(self, text: str) -> tuple[str, ModelReading]:
        clean = normalise(text)
        if not clean:
            return clean, ModelReading()
        return clean, ModelReading.from_parse(await self.agent.parse_message(clean))

    async def decide(self, text: str) -> Decision:
        clean, reading = await self.read(text)
        return triage(clean, reading=reading)


def keyword_decision(text: str) -> Decision:
    """The keyword-only baseline: the same rules with no model reading."""
    return triage(normalise(text))
