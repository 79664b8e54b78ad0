"""A raw UDP SIP peer for the fleet's unit tests (test_units.py): what tests/sip/test_gateway.py
provided until it moved to the fake wire (a373e88). Kept here so the fleet tests do not depend on
another module's helpers."""

from __future__ import annotations

import asyncio
import socket

from telephony.sip.message import parse

SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


def request(method: str, call_id: str, branch: str, cseq: int, to_tag: str = "") -> bytes:
    """An in-dialog (or dialog-less) request from the peer at 127.0.0.1:5999, no body."""
    to = f"<sip:100@127.0.0.1>{';tag=' + to_tag if to_tag else ''}"
    return (f"{method} sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch={branch};rport\r\n"
            f"From: <sip:t@127.0.0.1>;tag=ft\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


class Peer:
    """A non-blocking UDP socket on 127.0.0.1 talking to a gateway's port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.port))

    async def recv_all(self, seconds: float, raw: bool = False) -> list:
        """Everything that arrives within ``seconds`` (parsed unless ``raw``)."""
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
