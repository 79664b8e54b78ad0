"""Per-call dialog state of the gateway and the hooks the runner plugs in (records, routing, auth)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from telephony.media.call import CallInfo, LiveCall
from telephony.media.recording import StereoRecorder
from telephony.sip.message import SipMessage
from telephony.sip.uac import OutboundTarget


@dataclass
class GatewayHooks:
    """Callbacks into the outside world (the runner binds them to the ORM). All optional."""

    on_call_started: Callable[[CallInfo], Awaitable[dict]] | None = None  # -> {"record_id", "campaign_id", ...}
    on_call_answered: Callable[[LiveCall], Awaitable[None]] | None = None
    on_call_ended: Callable[[LiveCall, dict, Path | None], Awaitable[None]] | None = None
    # a transfer target the agent named -> where to REFER and dial (raises when the rules refuse it)
    transfer_target: Callable[[LiveCall, str], Awaitable[OutboundTarget]] | None = None
    lookup_ha1: Callable[[str], str | None] = lambda user: None
    open_mode: Callable[[], bool] = lambda: True


class DialogState(StrEnum):
    """Where an INVITE dialog is. A StrEnum, so a state reads and logs as its name ("early")."""

    EARLY = "early"  # INVITE accepted for set-up (UAS) or sent (UAC); no 2xx yet
    ANSWERED = "answered"  # we sent 200 OK and wait for the caller's ACK (UAS only)
    CONFIRMED = "confirmed"  # ACK received (UAS) or sent (UAC): in-dialog requests are welcome
    ENDED = "ended"  # BYE, CANCEL, failure or shutdown: final


# RFC 3261 12/13 as this bridge plays it: a UAC dialog goes from early straight to confirmed (it
# sends the ACK itself); nothing leaves ENDED, so a set-up that finishes after a CANCEL cannot revive it
TRANSITIONS: dict[DialogState, frozenset[DialogState]] = {
    DialogState.EARLY: frozenset({DialogState.ANSWERED, DialogState.CONFIRMED, DialogState.ENDED}),
    DialogState.ANSWERED: frozenset({DialogState.CONFIRMED, DialogState.ENDED}),
    DialogState.CONFIRMED: frozenset({DialogState.ENDED}),
    DialogState.ENDED: frozenset(),
}


@dataclass
class Dialog:
    """One INVITE dialog, identified by Call-ID + the remote tag + our (local) tag.

    ``to_tag`` is always *our* tag and ``remote_tag`` the peer's, whatever the role: for a call we
    answered (role "uas") ours is the To tag and the caller's the From tag; for a call we placed
    (role "uac", ``telephony.media.outbound``) ours is the From tag of our INVITE and the callee's
    the To tag of its answer. An in-dialog request from the peer carries the peer's tag in From and
    ours in To in both cases, so one matching rule serves both roles.

    Created (state "early") the moment an INVITE is accepted for set-up, before any await, so a
    duplicate INVITE can never create a second dialog for the same Call-ID.
    """

    invite: SipMessage
    src: tuple[str, int]  # where the INVITE came from: replies and our BYE go here
    to_tag: str  # ours
    remote_tag: str  # the caller's From tag
    local_addr: str  # the address we advertise in SDP/Contact for this call
    call: LiveCall | None = None  # None while the RTP session is being opened
    local_seq: int = 1
    remote_cseq: int = 0  # in-dialog requests must count up (RFC 3261 12.2.2): an old one is a replay
    state: DialogState = DialogState.EARLY  # changed only by move(): see TRANSITIONS
    last_response: bytes = b""
    agent_task: asyncio.Task | None = None
    tasks: list = field(default_factory=list)
    recorder: StereoRecorder | None = None
    ack_event: asyncio.Event = field(default_factory=asyncio.Event)
    # media supervision (gateway clock): held calls get the hold timeout instead of the RTP timeout
    media_since: float = 0.0  # when inbound media became expected (answer, or resume from hold)
    held_since: float | None = None
    # RFC 4028 session timer, when the caller asked for one and refreshes it
    session_expires: int | None = None
    session_deadline: float | None = None
    # our SDP: o= session id and version, bumped only when the answer's media description changes
    sdp_session: int = 0
    sdp_version: int = 1
    sdp_media: bytes = b""
    exempt_ip: bool = False  # counted in the gateway's established-peer set (pike exemption)
    # a call we placed (UAC): the callee's To header (with its tag), remote target and route set
    role: str = "uas"
    remote_to: str = ""
    remote_target: str = ""
    routes: list = field(default_factory=list)
    media_started: bool = False  # the RTP session is on the media clock (early media or answer)
    responses: asyncio.Queue | None = None  # INVITE responses for the dialling coroutine (UAC, early)
    cancel_asked: bool = False  # UAC, ringing: stop now (the transfer's caller hung up), CANCEL as at the ring timeout

    def move(self, to: DialogState) -> bool:
        """Take the dialog to ``to`` if TRANSITIONS allow it; False (state unchanged) if not, so a
        late or repeated step (an ACK after BYE, an answer after CANCEL) cannot move it backwards."""
        if to not in TRANSITIONS[self.state]:
            return False
        self.state = to
        return True
