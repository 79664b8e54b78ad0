"""The transfer state machine on a fake wire (tests/sip/wire.py): REFER with Refer-To/Referred-By
to the caller, NOTIFY sipfrag progress answered 200 and matched like any in-dialog request, BYE on
a final 2xx; REFER refused or a failed sipfrag -> the target is dialled and bridged (audio relayed
caller -> target over real loopback RTP); a target that does not answer leaves the call with the
agent. No sleeps: every wait is for a message the gateway sends."""

from __future__ import annotations

import asyncio
import itertools
import socket

import pytest

from telephony.media.call import TransferFailed
from telephony.media.relay import RelayAgent
from telephony.rtp.packet import build_rtp, parse_rtp
from telephony.sip.message import response_to
from telephony.sip.uac import OutboundTarget
from tests.sip.wire import Wire, make_gateway, request, sdp

CALLER = ("127.0.0.1", 5999)
BRANCHES = itertools.count()
TARGET = ("10.0.0.9", 5060)  # signalling only: the fake wire never sends it to the network


@pytest.fixture
async def wire():
    gw, clock = make_gateway()
    w = Wire(gw, clock)
    asked: list[str] = []

    async def transfer_target(call, target: str) -> OutboundTarget:
        asked.append(target)
        if target == "nowhere":
            raise ValueError("not in the allowed prefixes")
        return OutboundTarget(request_uri=f"sip:{target}@10.0.0.9:5060", dest=TARGET, dialed=target)

    gw.hooks.transfer_target = transfer_target
    w.asked = asked
    yield w
    await gw.aclose()


def notify(call_id: str, to_tag: str, cseq: int, frag: bytes, *, state: str = "active;expires=60",
           event: str = "refer", from_tag: str = "ft", src: tuple[str, int] = CALLER) -> bytes:
    return request("NOTIFY", call_id, branch=f"z9hG4bKn{next(BRANCHES)}", cseq=cseq, from_tag=from_tag,
                   to_tag=to_tag, body=frag, ctype="message/sipfrag;version=2.0", src=f"{src[0]}:{src[1]}",
                   extra=f"Event: {event}\r\nSubscription-State: {state}\r\n")


async def start_transfer(w: Wire, call_id: str, target: str = "bob"):
    ok = await w.call(call_id)
    call = w.gw.dialogs[call_id].call
    task = asyncio.create_task(call.transfer(target))
    ref = await w.until(lambda m: m.method == "REFER")
    return ok, call, task, ref


async def test_refer_accepted_notify_200_ends_the_call_transferred(wire):
    ok, call, task, ref = await start_transfer(wire, "c-ok")
    [(sent, dest)] = [(m, a) for m, a in wire.take() if m.method == "REFER"]
    assert dest == CALLER and sent.uri == "sip:t@127.0.0.1:5999"  # the caller's Contact, its address
    assert sent.get("refer-to") == "<sip:bob@10.0.0.9:5060>" and sent.get("referred-by", "").startswith("<sip:")
    assert sent.from_tag == ok.to_tag and sent.to_tag == "ft" and sent.cseq == (2, "REFER")  # our tag, their tag
    assert sent.get("contact")
    wire.feed(response_to(sent, 202, "Accepted").serialize())
    wire.feed(notify("c-ok", ok.to_tag, 2, b"SIP/2.0 100 Trying\r\n"))
    got = await wire.until(lambda m: m.status == 200 and m.cseq == (2, "NOTIFY"))
    assert got.call_id == "c-ok"
    assert not call.ended.is_set()  # a provisional sipfrag: still ours
    wire.feed(notify("c-ok", ok.to_tag, 3, b"SIP/2.0 200 OK\r\n", state="terminated;reason=noresource"))
    await wire.until(lambda m: m.status == 200 and m.cseq == (3, "NOTIFY"))
    bye = await wire.until(lambda m: m.method == "BYE")
    assert await asyncio.wait_for(task, 5) == "transferred"
    wire.feed(response_to(bye, 200).serialize())
    await asyncio.wait_for(call.ended.wait(), 5)
    assert call.end_reason == "transferred" and wire.asked == ["bob"]
    assert not wire.gw._refers and not wire.gw._transfers  # bounded: nothing left behind


async def test_notify_is_matched_like_any_in_dialog_request(wire):
    ok, call, task, ref = await start_transfer(wire, "c-m")
    wire.take()
    wire.feed(notify("c-m", "wrong-tag", 2, b"SIP/2.0 200 OK\r\n"))
    wire.feed(notify("c-m", ok.to_tag, 2, b"SIP/2.0 200 OK\r\n", from_tag="other"))
    assert wire.statuses() == [481, 481]  # a stranger who knows the Call-ID cannot end the call
    wire.feed(notify("c-m", ok.to_tag, 2, b"SIP/2.0 100 Trying\r\n", event="presence"))
    assert wire.statuses() == [489]  # no such subscription
    wire.feed(notify("c-m", ok.to_tag, 1, b"SIP/2.0 200 OK\r\n"))  # CSeq not above the dialog's last
    assert wire.statuses() == [500]
    wire.feed(notify("c-m", ok.to_tag, 5, b"garbage"))
    assert wire.statuses() == [400]
    assert not call.ended.is_set() and not task.done()
    # a NOTIFY that overtakes the 202 counts as acceptance; the sipfrag 200 completes the transfer
    wire.feed(notify("c-m", ok.to_tag, 6, b"SIP/2.0 200 OK\r\n", state="terminated"))
    await wire.until(lambda m: m.method == "BYE")
    assert await asyncio.wait_for(task, 5) == "transferred"


def target_ok(invite, tag: str = "tt", port: int = 40010):
    return response_to(invite, 200, to_tag=tag, body=sdp("127.0.0.1", port),
                       extra=[("Contact", "<sip:bob@10.0.0.9:5060>"), ("Content-Type", "application/sdp")])


async def test_refer_refused_dials_the_target_and_relays_the_callers_audio(wire):
    target_rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target_rtp.bind(("127.0.0.1", 0))
    target_rtp.setblocking(False)
    port = target_rtp.getsockname()[1]
    caller_rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller_rtp.bind(("127.0.0.1", 40000))  # the caller's SDP address: media is accepted from it
    try:
        ok, call, task, ref = await start_transfer(wire, "c-br")
        agent_task = wire.gw.dialogs["c-br"].agent_task
        wire.feed(response_to(ref, 603, "Decline").serialize())
        invite = await wire.until(lambda m: m.method == "INVITE" and m.uri == "sip:bob@10.0.0.9:5060")
        assert dict((m.method, a) for m, a in wire.take() if m.method)["INVITE"] == TARGET
        wire.feed(response_to(invite, 180, to_tag="tt").serialize(), TARGET)
        wire.feed(target_ok(invite, port=port).serialize(), TARGET)
        assert await asyncio.wait_for(task, 5) == "bridged"
        leg = next(d for d in wire.gw.dialogs.values() if d.role == "uac")
        assert leg.call.info.extra["transfer_of"] == "c-br" and leg.state == "confirmed"
        await asyncio.wait({agent_task}, timeout=5)
        assert agent_task.cancelled()  # the agent left the caller ...
        # ... and the caller's voice reaches the target: mu-law 0x55 bytes in, the same bytes out
        local = call.session.local_port
        for i in range(20):
            caller_rtp.sendto(build_rtp(0, 100 + i, 160 * i, 0x1234, i == 0, b"\x55" * 160), ("127.0.0.1", local))
        loop = asyncio.get_running_loop()

        async def heard() -> None:
            while True:
                pkt = parse_rtp(await loop.sock_recv(target_rtp, 2048))
                if pkt is not None and pkt.payload == b"\x55" * 160:
                    return
        await asyncio.wait_for(heard(), 10)
        # the caller hangs up: the target's leg gets a BYE too
        wire.feed(request("BYE", "c-br", branch="z9hG4bKbye", cseq=5, to_tag=ok.to_tag))
        bye = await wire.until(lambda m: m.method == "BYE" and m.call_id == leg.call.call_id)
        assert bye.to_tag == "tt"
        wire.feed(response_to(bye, 200).serialize(), TARGET)
        await asyncio.wait_for(leg.call.ended.wait(), 5)
        assert call.end_reason == "bye" and leg.call.end_reason == "transferred"
    finally:
        target_rtp.close()
        caller_rtp.close()


async def test_failed_sipfrag_then_busy_target_leaves_the_call_with_the_agent(wire):
    ok, call, task, ref = await start_transfer(wire, "c-busy")
    wire.feed(response_to(ref, 202, "Accepted").serialize())
    wire.feed(notify("c-busy", ok.to_tag, 2, b"SIP/2.0 503 Service Unavailable\r\n", state="terminated"))
    invite = await wire.until(lambda m: m.method == "INVITE" and m.uri == "sip:bob@10.0.0.9:5060")
    wire.feed(response_to(invite, 486, to_tag="tt").serialize(), TARGET)
    with pytest.raises(TransferFailed, match="busy"):
        await asyncio.wait_for(task, 5)
    assert not call.ended.is_set() and wire.gw.dialogs["c-busy"].state == "confirmed"
    assert not wire.gw.dialogs["c-busy"].agent_task.done()  # the agent still talks to the caller
    with pytest.raises(TransferFailed, match="target refused"):
        await call.transfer("nowhere")  # the rules refuse it: no REFER at all
    assert not [m for m, _ in wire.take() if m.method == "REFER" and m.cseq[0] > 2]


async def test_relay_translates_and_bounds_the_queue():
    class Leg:
        def __init__(self, codec: str, frames: list[bytes]) -> None:
            self.codec, self.frames, self.played = codec, frames, []
            self.ended, self.reason = asyncio.Event(), None

        async def audio_in(self):
            for f in self.frames:
                yield f

        def play(self, payload: bytes) -> None:
            self.played.append(payload)

        @property
        def playout_queued_bytes(self) -> int:
            return 160 * len(self.played)

        def end_now(self, reason: str) -> None:
            self.reason = reason
            self.ended.set()

    a, b = Leg("PCMU", [b"\xff" * 160] * 5), Leg("PCMA", [])
    relay = RelayAgent(b, max_queue_ms=60)  # 3 frames
    await relay.run(a)
    assert b.played == [b"\xd5" * 160] * 3 and relay.dropped == 2  # mu-law silence -> A-law silence
    assert a.reason == b.reason == "transferred"  # the caller's audio ended: both legs end
