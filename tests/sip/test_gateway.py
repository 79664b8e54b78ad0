"""The gateway's core SIP behaviour: INVITE retransmission, the 200 OK resent until the ACK, busy,
CANCEL of an early dialog, unknown dialogs and methods, RTP timeout, malformed input.

On the fake wire (tests/sip/wire.py): datagrams go straight to the gateway's handler, what it sends
is collected, and time is a FakeClock the test moves — so each test waits for an event (a message
sent, a timer pending, a call finalised), never for a window of wall-clock time.
"""

from __future__ import annotations

import asyncio

import pytest

from telephony.sip.message import parse
from telephony.sip.timers import T1, T2

from .wire import Wire, make_gateway, request, sdp

PHONE = ("127.0.0.1", 5999)


@pytest.fixture
async def wire():
    gw, clock = make_gateway(max_calls=1)
    w = Wire(gw, clock)
    yield w
    await gw.aclose()


async def settle(w: Wire) -> None:
    """Wait for the calls being ended to be finalised (on_call_ended has run)."""
    if w.gw._ending:
        await asyncio.gather(*list(w.gw._ending))


def invite(call_id: str, branch: str, body: bytes | None = None) -> bytes:
    return request("INVITE", call_id, branch=branch, body=sdp() if body is None else body)


async def test_invite_retransmit_makes_one_call_and_200_repeats_until_ack(wire):
    wire.feed(invite("c1", "z9hG4bKinv1"))
    wire.feed(invite("c1", "z9hG4bKinv1"))  # retransmission: answered from the transaction, no second call
    ok = await wire.until(lambda m: m.status == 200)
    assert [m.status for m in wire.peek()] == [100, 100, 180, 200]
    assert wire.gw.stats["invites"] == 1 and wire.gw.active_calls == 1
    assert b"m=audio" in ok.body and b"RTP/AVP 0 101" in ok.body

    await wire.clock.sleeping()  # the 200 OK's retransmit timer (T1) is pending
    wire.clock.advance(T1)
    again = await wire.until(lambda m: m.status == 200, count=2)  # no ACK within T1: the 200 OK again
    assert again.to_tag == ok.to_tag and again.body == ok.body

    retransmitter = wire.gw.dialogs["c1"].tasks[0]
    wire.feed(request("ACK", "c1", branch="z9hG4bKack", to_tag=ok.to_tag))
    await asyncio.wait_for(retransmitter, 10)  # the ACK stops the timer (the bound only stops a hang) ...
    wire.take()
    wire.clock.advance(64 * T1)
    assert wire.clock.sleepers == 0 and wire.take() == []  # ... so no more 200s, whatever the time

    wire.feed(request("BYE", "c1", branch="z9hG4bKbye", cseq=2, to_tag=ok.to_tag))
    assert wire.statuses() == [200]
    await settle(wire)
    assert wire.gw.ended == ["bye"] and wire.gw.active_calls == 0


async def test_no_ack_at_all_resends_on_the_rfc_schedule_then_hangs_up(wire):
    ok = await wire.call("c-noack", ack=False)
    await wire.clock.run_until(wire.gw.dialogs["c-noack"].tasks[0])  # 35.5 s of fake time, at once
    sent = [(at, parse(raw)) for at, raw in wire.history]
    oks = [at for at, m in sent if m.status == 200 and m.cseq[1] == "INVITE"]
    # RFC 3261 13.3.1.4: T1, doubling, capped at T2, until 64*T1 (32 s) of waiting has passed
    assert [b - a for a, b in zip(oks, oks[1:], strict=False)] == [T1, 2 * T1, 4 * T1] + [T2] * 8
    bye_at, bye = next((at, m) for at, m in sent if m.method == "BYE")
    assert bye.call_id == "c-noack" and f"tag={ok.to_tag}" in bye.get("from") and bye_at == oks[-1]
    await settle(wire)
    assert wire.gw.ended == ["error"]


async def test_busy_cancel_and_unknown(wire):
    release, setup = asyncio.Event(), []

    async def started(info) -> dict:  # holds c2 in set-up: an early dialog, like a ringing phone
        setup.append(asyncio.current_task())
        await release.wait()
        return {}

    wire.gw.hooks.on_call_started = started
    wire.feed(invite("c2", "z9hG4bKa"))
    await wire.until(lambda m: m.status == 100)
    wire.take()
    wire.feed(invite("c3", "z9hG4bKb"))  # over max_calls=1
    assert wire.statuses() == [486]

    wire.feed(request("CANCEL", "c2", branch="z9hG4bKa"))
    got = [m for m, _ in wire.take()]
    assert sorted(m.status for m in got) == [200, 487]
    assert next(m for m in got if m.status == 487).cseq == (1, "INVITE")
    release.set()
    await settle(wire)
    await setup[0]  # the released set-up saw the cancel ...
    assert wire.gw.ended == ["cancel"] and wire.gw.active_calls == 0
    assert wire.take() == []  # ... and neither rang nor answered

    wire.feed(request("BYE", "nope", branch="z9hG4bKc", cseq=2, to_tag="x"))
    wire.feed(request("SUBSCRIBE", "c9", branch="z9hG4bKd"))
    assert sorted(wire.statuses()) == [405, 481]


async def test_rtp_timeout_ends_the_call_with_bye(wire):
    await wire.call("c4")  # no RTP at all from the caller
    wire.take()
    wire.clock.advance(wire.gw.rtp_timeout_s - 1)
    wire.gw.housekeeping()
    assert wire.take() == [] and wire.gw.active_calls == 1  # not yet
    wire.clock.advance(2)
    wire.gw.housekeeping()
    bye = await wire.until(lambda m: m.method == "BYE")
    assert bye.call_id == "c4"
    await settle(wire)
    assert wire.gw.ended == ["rtp_timeout"]


async def test_no_common_codec_is_488_and_garbage_is_400_or_dropped(wire):
    wire.feed(invite("c5", "z9hG4bK5", body=sdp().replace(b"RTP/AVP 0 101", b"RTP/AVP 18")))
    assert wire.statuses() == [488]
    wire.feed(b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKz;rport\r\n\r\n")
    assert len(wire.sent) == 1 and wire.sent[0][0].startswith(b"SIP/2.0 400 Bad Request")
    wire.sent.clear()
    wire.feed(b"\x00\xff garbage")
    assert wire.sent == []
    assert wire.gw.stats["bad_messages"] == 2 and wire.gw.active_calls == 0
