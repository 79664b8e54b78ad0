"""A live call as the agent sees it: the CallHandle implementation over one RtpSession."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from telephony.rtp.session import RtpSession

from .contract import CallEvent, DtmfEvent, HangupEvent, events_until_hangup


class TransferFailed(RuntimeError):
    """The call could not be transferred (target refused by the rules, REFER refused and the
    bridged leg not answered, ...): the caller is still on the call with the agent.

    ``outcome`` says why in one word when the target was dialled (``no_answer``, ``busy``,
    ``rejected``, ``failed``, ``hung_up``...), so the agent can tell the caller what happened."""

    def __init__(self, message: str, outcome: str = "") -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass
class CallInfo:
    """What the bridge knows about a call when it starts (handed to the runner's hooks)."""

    call_id: str
    caller_uri: str
    dialed_user: str
    codec: str
    remote_rtp: tuple[str, int]
    local_rtp_port: int
    extra: dict = field(default_factory=dict)


class LiveCall:
    """Implements ``telephony.media.contract.CallHandle``."""

    def __init__(self, info: CallInfo, session: RtpSession, request_hangup: Callable[[str], None]) -> None:
        self.info = info
        self.call_id = info.call_id
        self.dialed_user = info.dialed_user
        self.caller_uri = info.caller_uri
        self.codec = info.codec
        self.record_id: int | None = None
        self.campaign_id: int | None = None
        self.context: dict = {}
        self.direction = "inbound"  # "outbound" for a call the bridge placed (telephony.media.outbound)
        self.outcome = ""  # outbound: answered, busy, no_answer, ... (telephony.sip.uac.OUTCOMES)
        self.sip_status: int | None = None  # outbound: the final status of our INVITE
        self.session = session
        self._events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._request_hangup = request_hangup
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self.answered_at: float | None = None
        # set by the gateway once the call is up (telephony.media.transfer): target -> how it went
        self.transferer: Callable[..., Awaitable[str]] | None = None
        session.on_dtmf = self._on_dtmf

    # --- for the bridge -----------------------------------------------------------------
    def _on_dtmf(self, digit: str) -> None:
        self._events.put_nowait(DtmfEvent(digit, time.monotonic()))

    def dtmf(self, digit: str) -> None:
        """A digit that came by signalling (SIP INFO) rather than RFC 4733: the agent sees the same event."""
        self._on_dtmf(digit)

    def end_now(self, reason: str) -> None:
        """BYE at once, without letting queued audio play (a bridged leg whose partner left)."""
        if not self.ended.is_set():
            self._request_hangup(reason)

    def mark_ended(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason = reason
        self.ended.set()
        self._events.put_nowait(HangupEvent(reason, time.monotonic()))

    # --- CallHandle ---------------------------------------------------------------------
    def audio_in(self) -> AsyncIterator[bytes]:
        return self.session.frames()  # the session's own iterator: no second generator per frame

    def events(self) -> AsyncIterator[CallEvent]:
        return events_until_hangup(self._events)

    def play(self, payload: bytes, on_sent: Callable[[float], None] | None = None) -> None:
        if not self.ended.is_set():
            self.session.enqueue(payload, on_sent)

    def clear_playout(self) -> int:
        return self.session.clear()

    @property
    def playout_queued_bytes(self) -> int:
        return self.session.queued_bytes

    async def playout_drained(self, timeout: float) -> None:
        await self.session.playout.wait_drained(self.ended, timeout)

    @property
    def last_agent_packet_at(self) -> float | None:
        return self.session.last_agent_packet_at

    async def hangup(self, reason: str = "agent", drain_timeout: float = 10.0) -> None:
        """Let queued agent audio play out (bounded), then ask the bridge to send BYE."""
        await self.playout_drained(drain_timeout)
        await asyncio.sleep(0.06)  # a grace for the phone's jitter buffer to play the last frames
        if not self.ended.is_set():
            self._request_hangup(reason)

    async def transfer(self, target: str, mode: str = "blind",
                       brief: Callable[[LiveCall], Awaitable[object]] | None = None) -> str:
        """Transfer the caller to ``target`` (a number, SIP URI or extension the runner routes).
        Blind: REFER first, else dial the target and bridge the two calls. Warm: dial the target,
        ``brief(leg)`` speaks to it (the summary) while the caller holds, then bridge. Returns
        "transferred" (REFER worked: this call has ended) or "bridged" (the agent is replaced by
        the relay); raises ``TransferFailed`` when it did not work and the call goes on with the agent."""
        if self.transferer is None:
            raise TransferFailed("this call cannot be transferred")
        return await self.transferer(target, mode=mode, brief=brief)
