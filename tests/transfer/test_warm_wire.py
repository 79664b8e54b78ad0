"""Warm transfer on the fake wire (tests/sip/wire.py) with real loopback RTP: no REFER; the gateway
dials the target, the agent's ``brief`` plays to the target's leg while the caller holds (the target
receives exactly those bytes, the caller none of them), then caller and target are joined (audio
both ways, the caller's agent cancelled). A busy target, one that hangs up during the summary, and
a caller who leaves meanwhile leave the right state behind. No sleeps: every wait is for a message
the gateway sends, a packet arriving or a task finishing."""

from __future__ import annotations

import asyncio
import socket

import pytest

from telephony.media.call import TransferFailed
from telephony.rtp.packet import build_rtp, parse_rtp
from telephony.sip.message import response_to
from tests.sip.wire import request

from .test_refer_wire import TARGET, target_ok, wire  # noqa: F401 - the fake-wire fixture

SUMMARY = b"\x33" * 160  # what brief() plays: 10 frames of a byte the caller's side never sends
CALLER_BYTE, TARGET_BYTE = b"\x55" * 160, b"\x66" * 160


def udp(port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    s.setblocking(False)
    return s


async def until_payload(sock: socket.socket, payload: bytes, *, avoid: bytes | None = None) -> int:
    """Read RTP until ``payload`` arrives; how many packets carried ``avoid`` before it."""
    loop, seen = asyncio.get_running_loop(), 0
    for _ in range(5000):  # bounded: 100 s of 20 ms packets
        pkt = parse_rtp(await loop.sock_recv(sock, 2048))
        if pkt is None:
            continue
        if pkt.payload == payload:
            return seen
        seen += avoid is not None and pkt.payload == avoid
    raise AssertionError("payload never arrived")


def send_frames(sock: socket.socket, dest_port: int, payload: bytes, n: int = 25, ssrc: int = 0x1234) -> None:
    for i in range(n):
        sock.sendto(build_rtp(0, 100 + i, 160 * i, ssrc, i == 0, payload), ("127.0.0.1", dest_port))


async def start_warm(w, call_id: str, brief):
    ok = await w.call(call_id)
    call = w.gw.dialogs[call_id].call
    task = asyncio.create_task(call.transfer("bob", mode="warm", brief=brief))
    invite = await w.until(lambda m: m.method == "INVITE" and m.uri == "sip:bob@10.0.0.9:5060")
    return ok, call, task, invite


async def test_warm_transfer_briefs_the_target_then_joins_the_caller(wire):  # noqa: F811
    target_rtp, caller_rtp = udp(), udp(40000)  # 40000: the caller's SDP address
    briefed: list = []

    async def brief(leg) -> None:
        briefed.append(leg)
        sent = asyncio.Event()
        for i in range(10):  # returns once the media clock sent the last frame (as wait_played does)
            leg.play(SUMMARY, (lambda t: sent.set()) if i == 9 else None)
        await sent.wait()

    try:
        ok, call, task, invite = await start_warm(wire, "c-warm", brief)
        agent_task = wire.gw.dialogs["c-warm"].agent_task
        assert not [m for m, _ in wire.take() if m.method == "REFER"]  # warm: the caller is never REFERred
        wire.feed(target_ok(invite, port=target_rtp.getsockname()[1]).serialize(), TARGET)
        await until_payload(target_rtp, SUMMARY)  # the target hears the summary ...
        leg = next(d for d in wire.gw.dialogs.values() if d.role == "uac")
        assert briefed == [leg.call] and leg.call.info.extra == {**leg.call.info.extra, "warm": True,
                                                               "transfer_of": "c-warm"}
        assert not agent_task.done()  # ... while the agent still holds the caller
        assert await asyncio.wait_for(task, 10) == "bridged"
        await asyncio.wait({agent_task}, timeout=5)
        assert agent_task.cancelled()
        # joined: the caller's voice reaches the target, the target's voice reaches the caller
        send_frames(caller_rtp, call.session.local_port, CALLER_BYTE)
        await asyncio.wait_for(until_payload(target_rtp, CALLER_BYTE), 10)
        send_frames(target_rtp, leg.call.session.local_port, TARGET_BYTE, ssrc=0x9999)
        assert await asyncio.wait_for(until_payload(caller_rtp, TARGET_BYTE, avoid=SUMMARY), 10) == 0
        # the target hangs up: the caller's call ends "transferred"
        wire.feed(request("BYE", leg.call.call_id, branch="z9hG4bKtb", cseq=2, from_tag="tt",
                          to_tag=leg.to_tag, uri="sip:talky@127.0.0.1:5060", src="10.0.0.9:5060"), TARGET)
        await asyncio.wait_for(call.ended.wait(), 5)
        assert call.end_reason == "transferred" and leg.call.end_reason == "bye"
    finally:
        target_rtp.close()
        caller_rtp.close()


async def test_busy_target_leaves_the_caller_with_the_agent(wire):  # noqa: F811
    async def brief(leg) -> None:
        raise AssertionError("nobody answered: nothing to brief")

    ok, call, task, invite = await start_warm(wire, "c-busy", brief)
    wire.feed(response_to(invite, 486, "Busy Here", to_tag="tt").serialize(), TARGET)
    with pytest.raises(TransferFailed) as err:
        await asyncio.wait_for(task, 5)
    assert err.value.outcome == "busy"
    assert not call.ended.is_set() and wire.gw.dialogs["c-busy"].state == "confirmed"
    assert not wire.gw.dialogs["c-busy"].agent_task.done()  # the agent goes on with the caller
    assert not wire.gw._transfers


async def test_target_hanging_up_during_the_summary_fails_the_transfer(wire):  # noqa: F811
    target_rtp = udp()
    started = asyncio.Event()

    async def brief(leg) -> None:
        started.set()
        await asyncio.Event().wait()  # a summary that would never end: the hang-up must win

    try:
        ok, call, task, invite = await start_warm(wire, "c-hup", brief)
        wire.feed(target_ok(invite, port=target_rtp.getsockname()[1]).serialize(), TARGET)
        await asyncio.wait_for(started.wait(), 5)
        leg = next(d for d in wire.gw.dialogs.values() if d.role == "uac")
        wire.feed(request("BYE", leg.call.call_id, branch="z9hG4bKhb", cseq=2, from_tag="tt",
                          to_tag=leg.to_tag, uri="sip:talky@127.0.0.1:5060", src="10.0.0.9:5060"), TARGET)
        with pytest.raises(TransferFailed) as err:
            await asyncio.wait_for(task, 5)
        assert err.value.outcome == "hung_up"
        assert not call.ended.is_set() and not wire.gw.dialogs["c-hup"].agent_task.done()
    finally:
        target_rtp.close()


async def test_caller_leaving_while_the_target_rings_cancels_it(wire):  # noqa: F811
    ok, call, task, invite = await start_warm(wire, "c-left", None)
    wire.feed(response_to(invite, 180, "Ringing", to_tag="tt").serialize(), TARGET)
    wire.feed(request("BYE", "c-left", branch="z9hG4bKcb", cseq=5, to_tag=ok.to_tag))
    cancel = await wire.until(lambda m: m.method == "CANCEL")
    assert cancel.call_id == invite.call_id
    wire.feed(response_to(cancel, 200).serialize(), TARGET)
    wire.feed(response_to(invite, 487, "Request Terminated", to_tag="tt").serialize(), TARGET)
    with pytest.raises(TransferFailed) as err:
        await asyncio.wait_for(task, 5)
    assert err.value.outcome == "caller_left" and call.end_reason == "bye"


async def test_unknown_mode_is_refused_before_anything_is_sent(wire):  # noqa: F811
    await wire.call("c-mode")
    wire.take()
    with pytest.raises(TransferFailed, match="unknown transfer mode"):
        await wire.gw.dialogs["c-mode"].call.transfer("bob", mode="attended")
    assert not wire.take()
