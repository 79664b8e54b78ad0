"""The conversation state of one pipeline call, in one typed object.

``VoicePipelineAgent`` holds its collaborators (the call, the config, the recogniser, the voice,
the tools) as attributes; everything that changes as the call goes on lives here instead, so a
reader sees in one place what a call remembers, what is in flight and who may change it:
``TurnMachine`` (turns.py) decides what an STT event means, this records what has happened.
``TurnTimes`` is one turn's measured instants, filled as the turn runs and written to its Turn row.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aioptions.providers.base import TurnEvent

from .llmflow import Speculation
from .speech import SpokenReply


@dataclass(slots=True)
class CallState:
    """What the call remembers and what is in flight; owned by the agent's tasks on one loop."""

    history: list[dict] = field(default_factory=list)  # the LLM's messages: system, greeting, turns
    turn_index: int = 0  # the next caller turn's number (its Turn row's index)
    turns: list[dict] = field(default_factory=list)  # every recorded turn's fields, as saved
    notes: list[str] = field(default_factory=list)  # provider faults handled since the last turn
    barge_latencies: list[float] = field(default_factory=list)  # ms from barge-in to playout cleared
    hangup_requested: bool = False  # the agent ended the call (goodbye, [END_CALL], time up)
    reply: SpokenReply | None = None  # what the agent is saying now (greeting or a turn's reply)
    reply_task: asyncio.Task | None = None  # the greeting or the turn producing ``reply``
    spec: Speculation | None = None  # the LLM request started on EagerEndOfTurn
    spec_task: asyncio.Task | None = None  # reads ``spec``'s stream into its buffer
    cfg_task: asyncio.Task | None = None  # the config for the coming turn, fetched at StartOfTurn

    def speaking(self) -> bool:
        """A reply (greeting or turn) is still being produced."""
        return self.reply_task is not None and not self.reply_task.done()

    def take_speculation(self) -> tuple[Speculation | None, asyncio.Task | None]:
        """Hand the speculative request to the turn that promotes it (or drop it): it is used once."""
        spec, task = self.spec, self.spec_task
        self.spec, self.spec_task = None, None
        return spec, task


@dataclass(slots=True)
class TurnTimes:
    """One caller turn as measured: the instants the waterfall is computed from (monotonic s)."""

    index: int
    event: TurnEvent
    speech_end: float  # the zero of the turn: the end of the caller's speech at the wire
    user_text: str
    eager: bool
    errors: list[str]
    llm_model: tuple[str, str]  # (provider, model) that answered
    llm_requested: float | None = None
    llm_first: float | None = None
