"""The contract between the SIP bridge (media plane) and whatever talks on a call (an agent).

The bridge owns sockets, pacing and records; an agent owns the conversation. An agent sees only
this interface, so the echo/greeting agents, the voice pipeline and test doubles are swappable.
Plain asyncio, no Django.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class DtmfEvent:
    digit: str  # "0"-"9", "*", "#", "A"-"D"
    at: float  # monotonic


@dataclass(frozen=True)
class HangupEvent:
    reason: str  # "bye" | "cancel" | "rtp_timeout" | "shutdown" | "agent" | "error"
    at: float


CallEvent = DtmfEvent | HangupEvent


async def events_until_hangup(queue: asyncio.Queue[CallEvent]) -> AsyncIterator[CallEvent]:
    """``CallHandle.events`` for a transport that queues its events: in order, ending after the
    HangupEvent. One copy for the SIP call, the browser call and the in-memory call."""
    while True:
        ev = await queue.get()
        yield ev
        if isinstance(ev, HangupEvent):
            return


class CallHandle(Protocol):
    call_id: str
    dialed_user: str  # SIP user part of the request URI ("100")
    caller_uri: str
    codec: str  # "PCMU" | "PCMA": the payload format of audio_in() and play()
    record_id: int | None  # Call row pk when the runner stored one

    def audio_in(self) -> AsyncIterator[bytes]:
        """Inbound audio: one 20 ms G.711 payload (160 bytes) per tick, in the call's codec,
        continuous (gaps concealed with silence) so downstream clocks keep running. Ends when
        the call ends."""
        ...

    def events(self) -> AsyncIterator[CallEvent]:
        """DTMF digits and the final hang-up, in order. Ends after the HangupEvent."""
        ...

    def play(self, payload: bytes, on_sent: Callable[[float], None] | None = None) -> None:
        """Append outbound G.711 (call codec, any length) to the paced queue. ``on_sent(t)`` is
        called with the monotonic send time of the first RTP packet carrying this payload."""
        ...

    def clear_playout(self) -> int:
        """Barge-in: drop everything queued and not yet sent; returns the bytes dropped."""
        ...

    @property
    def playout_queued_bytes(self) -> int:
        """Bytes of agent audio queued and not yet sent (0 = the agent is silent)."""
        ...

    async def playout_drained(self, timeout: float) -> None:
        """Until everything queued has been sent (barge-in's clear counts), the call ends, or
        ``timeout`` seconds pass."""
        ...

    @property
    def last_agent_packet_at(self) -> float | None:
        """Monotonic time the last RTP packet carrying agent audio (not comfort silence) left."""
        ...

    async def hangup(self, reason: str = "agent") -> None:
        """End the call from our side (BYE after queued audio has been sent)."""
        ...


class Agent(Protocol):
    async def run(self, call: CallHandle) -> None:
        """Talk on the call until it ends. Exceptions are logged by the bridge and end only this
        call."""
        ...


# Builds the agent for a new call; the runner passes the campaign context it resolved.
AgentFactory = Callable[[CallHandle], Agent]
