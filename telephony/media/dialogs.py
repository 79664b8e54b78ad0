"""Per-call dialog state of the gateway and the hooks the runner plugs in (records, routing, auth)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from telephony.media.call import CallInfo, LiveCall
from telephony.media.recording import StereoRecorder
from telephony.sip.message import SipMessage


@dataclass
class GatewayHooks:
    """Callbacks into the outside world (the runner binds them to the ORM). All optional."""

    on_call_started: Callable[[CallInfo], Awaitable[dict]] | None = None  # -> {"record_id", "campaign_id", ...}
    on_call_answered: Callable[[LiveCall], Awaitable[None]] | None = None
    on_call_ended: Callable[[LiveCall, dict, Path | None], Awaitable[None]] | None = None
    lookup_ha1: Callable[[str], str | None] = lambda user: None
    open_mode: Callable[[], bool] = lambda: True


@dataclass
class Dialog:
    call: LiveCall
    invite: SipMessage
    src: tuple[str, int]
    to_tag: str
    local_seq: int = 1
    state: str = "early"  # early -> answered (200 sent) -> confirmed (ACK) -> ended
    last_response: bytes = b""
    agent_task: asyncio.Task | None = None
    tasks: list = field(default_factory=list)
    recorder: StereoRecorder | None = None
    ack_event: asyncio.Event = field(default_factory=asyncio.Event)
