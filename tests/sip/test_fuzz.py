"""Fuzz: 10,000 malformed and hostile datagrams — mutations of real REGISTER/INVITE/BYE/INFO/
OPTIONS, huge headers, bad numbers, NUL bytes, truncated bodies, bad SDP — against a running
bridge (a real socket) that carries a live call. After every batch the bridge must answer an
OPTIONS; at the end the listener is up, no handler raised, and the call still has audio both ways.
Seeded, so a failure is reproducible."""

from __future__ import annotations

import asyncio
import logging
import random
import socket

import pytest

from telephony.agents.echo import EchoAgent
from telephony.media.gateway import SIPMediaGateway
from telephony.rtp.packet import build_rtp, parse_rtp
from telephony.sip.message import parse
from telephony.sip.policy import SipPolicy, parse_networks

from .wire import request, sdp

TOTAL, BATCH = 10_000, 250
NUMBERS = ["99999", "-1", "0", "65536", "4294967296", "1" * 400, "", "x", "1e9", "0x10", "+5", "٣"]
SDP_BAD = [b"c=IN IP4 phone.example.invalid", b"c=IN IP4 999.1.1.1", b"m=audio 70000 RTP/AVP 0",
           b"m=audio 0 RTP/AVP 0", b"m=audio x RTP/AVP 0", b"m=audio 4000 RTP/AVP " + b"0 " * 500,
           b"a=rtpmap:0 " + b"A" * 5000, b"c=IN IP6 ::1", b"m=video 4000 RTP/AVP 31", b"\x00" * 50]


def mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    op = rng.randrange(11)
    if op == 0:  # flip bytes
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif op == 1:  # truncate anywhere
        data = data[: rng.randrange(len(data))]
    elif op == 2:  # repeat a header line many times
        lines = bytes(data).split(b"\r\n")
        i = rng.randrange(1, max(2, len(lines) - 2))
        lines[i:i] = [lines[i]] * rng.choice([2, 50, 300])
        data = bytearray(b"\r\n".join(lines))
    elif op == 3:  # a bad number where a number was
        text = bytes(data)
        digits = [i for i, c in enumerate(text) if 48 <= c <= 57]
        if digits:
            i = rng.choice(digits)
            j = i
            while j < len(text) and 48 <= text[j] <= 57:
                j += 1
            data = bytearray(text[:i] + rng.choice(NUMBERS).encode() + text[j:])
    elif op == 4:  # control characters
        for _ in range(rng.randint(1, 3)):
            data.insert(rng.randrange(len(data) + 1), rng.choice([0, 1, 10, 13, 27, 127, 255]))
    elif op == 5:  # one huge header built to make a backtracking parser choke
        filler = rng.choice(["<", ";", ",", '"', " ", "a=", "<a", ";t"]) * rng.choice([500, 3000, 8000])
        name = rng.choice(["To", "From", "Via", "Contact", "Authorization", "Call-ID", "X-Junk", "CSeq"])
        data = bytearray(bytes(data).replace(b"\r\n", f"\r\n{name}: {filler}\r\n".encode(), 1))
    elif op == 6 and b"m=audio" in data:  # bad SDP
        data = bytearray(bytes(data).replace(b"m=audio 40000 RTP/AVP 0 101", rng.choice(SDP_BAD), 1))
    elif op == 7:  # lie about the body length
        data = bytearray(bytes(data).replace(b"Content-Length: ", b"Content-Length: " + rng.choice(NUMBERS).encode()
                                             + b"0", 1))
    elif op == 8:  # a strange start line
        first, _, rest = bytes(data).partition(b"\r\n")
        data = bytearray(rng.choice([b"INVITE  SIP/2.0", b"SIP/2.0 99999 X", b"FOO sip:x SIP/3.0", b"",
                                     b"INVITE sip:" + b"a" * 3000 + b" SIP/2.0", b"SIP/2.0 200"]) + b"\r\n" + rest)
    elif op == 9:  # random bytes
        data = bytearray(rng.randbytes(rng.randint(1, 1500)))
    else:  # a valid-looking message with a hostile Authorization
        data = bytearray(bytes(data).replace(b"\r\n", b'\r\nAuthorization: Digest username="' + b"a" * rng.choice(
            [10, 500, 4000]) + b'", nonce="1.x", uri="sip:x", response="' + b"0" * 32 + b'", nc=zz\r\n', 1))
    return bytes(data)


def corpus(rng: random.Random, call_id: str, from_tag: str, n: int) -> bytes:
    """A base message for datagram n: new calls, registrations, probes, and requests aimed at the live
    call with a wrong To tag (they must never act on it)."""
    kind = n % 9
    if kind == 0:
        return request("INVITE", f"fz-{n}", branch=f"z9hG4bKfz{n}", body=sdp(), src="127.0.0.1:6100")
    if kind == 1:
        return request("REGISTER", f"fzr-{n}", branch=f"z9hG4bKfr{n}", uri="sip:127.0.0.1", src="127.0.0.1:6100",
                       extra="Expires: 60\r\n")
    if kind == 2:
        return request("OPTIONS", f"fzo-{n}", branch=f"z9hG4bKfo{n}", src="127.0.0.1:6100")
    if kind == 3:
        return request("BYE", call_id, branch=f"z9hG4bKfb{n}", cseq=1000 + n, from_tag=from_tag, to_tag="wrong",
                       src="127.0.0.1:6100")
    if kind == 4:
        return request("INFO", call_id, branch=f"z9hG4bKfi{n}", cseq=1000 + n, from_tag=from_tag, to_tag="wrong",
                       body=b"Signal=5\r\nDuration=160\r\n", ctype="application/dtmf-relay", src="127.0.0.1:6100")
    if kind == 5:
        return request("INVITE", call_id, branch=f"z9hG4bKfri{n}", cseq=1000 + n, from_tag=from_tag, to_tag="wrong",
                       body=sdp(direction="inactive"), src="127.0.0.1:6100")
    if kind == 6:
        return request("CANCEL", call_id, branch=f"z9hG4bKfc{n}", from_tag=from_tag, src="127.0.0.1:6100")
    if kind == 7:
        return (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{n}\r\nFrom: <sip:a@b>;tag=1\r\n"
                f"To: <sip:c@d>;tag=2\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").encode()
    return request("UPDATE", call_id, branch=f"z9hG4bKfu{n}", cseq=1000 + n, from_tag=from_tag, to_tag="wrong",
                   extra="Session-Expires: 90\r\nSupported: timer\r\n", src="127.0.0.1:6100")


def udp(host: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.setblocking(False)
    return s


async def recv_until(sock: socket.socket, pred, bound_s: float = 10.0):
    loop = asyncio.get_running_loop()

    async def wait():
        while True:
            msg = parse(await loop.sock_recv(sock, 65535))
            if pred(msg):
                return msg
    return await asyncio.wait_for(wait(), bound_s)


@pytest.mark.slow
async def test_ten_thousand_hostile_datagrams_leave_the_bridge_and_its_call_intact(caplog):
    caplog.set_level(logging.ERROR, logger="telephony.bridge")
    gw = SIPMediaGateway(host="127.0.0.1", port=0, rtp_ports=(43000, 43998), agent_factory=lambda c: EchoAgent(),
                         max_calls=4, policy=SipPolicy(trusted=parse_networks("127.0.0.1")))  # no pike: all parsed
    await gw.start()
    sip, rtp, fuzzer, prober = udp(), udp(), udp(), udp()
    bridge = ("127.0.0.1", gw.port)
    rng = random.Random(20261201)
    try:
        src = f"127.0.0.1:{sip.getsockname()[1]}"
        sip.sendto(request("INVITE", "live", branch="z9hG4bKlive", body=sdp(port=rtp.getsockname()[1]), src=src),
                   bridge)
        ok = await recv_until(sip, lambda m: m.status == 200)
        sip.sendto(request("ACK", "live", branch="z9hG4bKliveack", to_tag=ok.to_tag, src=src), bridge)
        session = None
        for n in range(TOTAL):
            if session is None and "live" in gw.dialogs and gw.dialogs["live"].state == "confirmed":
                session = gw.dialogs["live"].call.session
            fuzzer.sendto(mutate(rng, corpus(rng, "live", "ft", n)), bridge)
            if n % 10 == 9:
                await asyncio.sleep(0)  # yield to the loop so the bridge reads (a socket buffer is finite)
            if n % BATCH == BATCH - 1:
                probe = f"probe-{n}"
                prober.sendto(request("OPTIONS", probe, branch=f"z9hG4bKp{n}",
                                      src=f"127.0.0.1:{prober.getsockname()[1]}"), bridge)
                reply = await recv_until(prober, lambda m, p=probe: m.call_id == p)
                assert reply.status == 200, n
        assert gw.listening and gw.transport.handler_errors == 0
        assert gw.transport.received >= TOTAL * 0.99, gw.transport.received  # (nearly) every datagram was read
        print("fuzz:", gw.transport.received, "datagrams read;", gw.stats)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records[:3]
        assert gw.stats["bad_messages"] > 2000
        dlg = gw.dialogs["live"]
        assert dlg.state == "confirmed" and session is dlg.call.session and session.send_enabled
        before = session.packets_in
        dest = ("127.0.0.1", session.local_port)
        for i in range(10):
            rtp.sendto(build_rtp(0, 500 + i, i * 160, 77, False, b"\x11" * 160), dest)
        got = 0
        loop = asyncio.get_running_loop()
        while got < 10:  # the bridge's stream still reaches the phone
            pkt = parse_rtp(await asyncio.wait_for(loop.sock_recv(rtp, 2000), 5))
            got += pkt is not None
        while session.packets_in < before + 10:
            await asyncio.wait_for(loop.sock_recv(rtp, 2000), 5)  # ticks pass as packets arrive
        assert session.remote == rtp.getsockname() and session.ignored == 0
    finally:
        for s in (sip, rtp, fuzzer, prober):
            s.close()
        await gw.aclose()
