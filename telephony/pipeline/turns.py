"""The turn state machine, pure (no I/O): Flux-shaped events in, actions out.

- StartOfTurn while the agent speaks -> BargeIn
- EagerEndOfTurn (eager on) -> StartSpeculative(text): an LLM request only, nothing spoken
- TurnResumed -> CancelSpeculative (eager outcome "cancelled")
- EndOfTurn, same text as the speculation -> Commit(promote=True) ("hit": no second request)
- EndOfTurn, other text -> CancelSpeculative + Commit(promote=False) ("miss": restart)
"""

from __future__ import annotations

from dataclasses import dataclass

from aioptions.providers.base import TurnEvent


@dataclass(frozen=True)
class BargeIn:
    pass


@dataclass(frozen=True)
class StartSpeculative:
    transcript: str


@dataclass(frozen=True)
class CancelSpeculative:
    reason: str  # "resumed" | "changed"


@dataclass(frozen=True)
class Commit:
    transcript: str
    event: TurnEvent
    promote: bool
    eager: str  # Turn.Eager value: off | none | hit | miss | cancelled


Action = BargeIn | StartSpeculative | CancelSpeculative | Commit


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


class TurnMachine:
    def __init__(self, eager_enabled: bool = False) -> None:
        self.eager_enabled = eager_enabled
        self.speculative: str | None = None
        self._eager_outcome = "none"

    def on_event(self, ev: TurnEvent, agent_speaking: bool) -> list[Action]:
        out: list[Action] = []
        if ev.kind == "StartOfTurn":
            if agent_speaking:
                out.append(BargeIn())
            self._eager_outcome = "none"
        elif ev.kind == "EagerEndOfTurn" and self.eager_enabled and ev.transcript.strip():
            if self.speculative is not None:
                out.append(CancelSpeculative("changed"))
            self.speculative = ev.transcript
            out.append(StartSpeculative(ev.transcript))
        elif ev.kind == "TurnResumed":
            if self.speculative is not None:
                self.speculative = None
                self._eager_outcome = "cancelled"
                out.append(CancelSpeculative("resumed"))
        elif ev.kind == "EndOfTurn":
            text = ev.transcript.strip()
            if self.speculative is not None and _norm(self.speculative) == _norm(text):
                out.append(Commit(text, ev, promote=True, eager="hit"))
            else:
                if self.speculative is not None:
                    out.append(CancelSpeculative("changed"))
                    self._eager_outcome = "miss"
                eager = self._eager_outcome if self.eager_enabled else "off"
                if text:
                    out.append(Commit(text, ev, promote=False, eager=eager))
            self.speculative = None
            self._eager_outcome = "none"
        return out
