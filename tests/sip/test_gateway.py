"""The gateway's SIP behaviour with a raw UDP socket as the peer: retransmissions, CANCEL, busy,
unknown dialogs and methods, RTP timeout, malformed input."""

import asyncio
import socket

import pytest

from telephony.agents.echo import EchoAgent
from telephony.media.gateway import GatewayHooks, SIPMediaGateway
from telephony.sip.message import parse

# real-time calls (paced media, provider or SIP timers): not in the fast default
pytestmark = pytest.mark.slow

SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


def invite(call_id: str, branch: str = "z9hG4bKinv1", body: bytes = SDP, extra: str = "") -> bytes:
    head = (f"INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch={branch};rport\r\n"
            f"From: <sip:t@127.0.0.1>;tag=ft\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:t@127.0.0.1:5999>\r\nContent-Type: application/sdp\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def request(method: str, call_id: str, branch: str, cseq: int, to_tag: str = "") -> bytes:
    to = f"<sip:100@127.0.0.1>{';tag=' + to_tag if to_tag else ''}"
    return (f"{method} sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch={branch};rport\r\n"
            f"From: <sip:t@127.0.0.1>;tag=ft\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


class Peer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.port))

    async def recv_all(self, seconds: float, raw: bool = False) -> list:
        out = []
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            try:
                data = self.sock.recv(65535)
                out.append(data if raw else parse(data))
            except BlockingIOError:
                await asyncio.sleep(0.01)
        return out


@pytest.fixture
async def gateway():
    ended = []

    async def on_end(call, stats, path):
        ended.append(call.end_reason)

    gw = SIPMediaGateway(host="127.0.0.1", port=0, rtp_ports=(41000, 41100), agent_factory=lambda c: EchoAgent(),
                         hooks=GatewayHooks(on_call_ended=on_end), max_calls=1, rtp_timeout_s=30.0)
    await gw.start()
    gw.ended = ended
    yield gw
    await gw.aclose()


async def test_invite_retransmit_makes_one_call_and_200_repeats_until_ack(gateway):
    peer = Peer(gateway.port)
    peer.send(invite("c1"))
    peer.send(invite("c1"))  # retransmission
    msgs = await peer.recv_all(1.3)
    statuses = [m.status for m in msgs]
    assert statuses[0] == 100 and 180 in statuses
    assert statuses.count(200) >= 2  # 200 OK retransmitted (T1 = 500 ms) while no ACK came
    assert gateway.stats["invites"] == 1 and gateway.active_calls == 1
    ok = next(m for m in msgs if m.status == 200)
    assert b"m=audio" in ok.body and b"RTP/AVP 0 101" in ok.body
    to_tag = ok.get("to").split("tag=")[1]
    peer.send(request("ACK", "c1", "z9hG4bKack", 1, to_tag))
    await peer.recv_all(0.1)
    assert [m.status for m in await peer.recv_all(1.2)].count(200) == 0  # no more retransmits after ACK
    peer.send(request("BYE", "c1", "z9hG4bKbye", 2, to_tag))
    assert [m.status for m in await peer.recv_all(0.5)] == [200]
    await asyncio.sleep(0.1)
    assert gateway.ended == ["bye"]


async def test_busy_cancel_and_unknown(gateway):
    gateway.ring_ms = 3000
    peer = Peer(gateway.port)
    peer.send(invite("c2", branch="z9hG4bKa"))
    await peer.recv_all(0.3)
    peer.send(invite("c3", branch="z9hG4bKb"))  # over max_calls=1
    assert 486 in [m.status for m in await peer.recv_all(0.3)]
    cancel = request("CANCEL", "c2", "z9hG4bKa", 1)
    peer.send(cancel)
    got = await peer.recv_all(0.5)
    assert sorted(m.status for m in got) == [200, 487]
    assert next(m for m in got if m.status == 487).cseq == (1, "INVITE")
    await asyncio.sleep(0.1)
    assert gateway.ended == ["cancel"]
    peer.send(request("BYE", "nope", "z9hG4bKc", 2, "x"))
    peer.send(request("SUBSCRIBE", "c9", "z9hG4bKd", 1))
    statuses = sorted(m.status for m in await peer.recv_all(0.4))
    assert statuses == [405, 481]


async def test_rtp_timeout_ends_the_call_with_bye(gateway):
    gateway.rtp_timeout_s = 1.0
    peer = Peer(gateway.port)
    peer.send(invite("c4"))
    ok = next(m for m in await peer.recv_all(0.4) if m.status == 200)
    peer.send(request("ACK", "c4", "z9hG4bKack4", 1, ok.get("to").split("tag=")[1]))
    msgs = await peer.recv_all(2.5)  # no RTP at all: timeout after 1 s
    assert any(m.method == "BYE" for m in msgs)
    assert gateway.ended == ["rtp_timeout"]


async def test_no_common_codec_is_488_and_garbage_is_400_or_dropped(gateway):
    peer = Peer(gateway.port)
    peer.send(invite("c5", body=SDP.replace(b"RTP/AVP 0 101", b"RTP/AVP 18")))
    assert [m.status for m in await peer.recv_all(0.3)] == [488]
    peer.send(b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKz;rport\r\n\r\n")
    replies = await peer.recv_all(0.3, raw=True)
    assert len(replies) == 1 and replies[0].startswith(b"SIP/2.0 400 Bad Request")
    peer.send(b"\x00\xff garbage")
    assert await peer.recv_all(0.2) == []
    assert gateway.stats["bad_messages"] == 2 and gateway.active_calls == 0
