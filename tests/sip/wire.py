"""A gateway on a fake wire: datagrams are fed to its handler directly with any source address
(no SIP socket, so 'remote' phones and attackers can have any IP) and replies are collected in a
list; time is a FakeClock the test moves. RTP sockets are real, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib

from telephony.agents.echo import EchoAgent
from telephony.media.gateway import GatewayHooks, SIPMediaGateway
from telephony.sip.auth import parse_digest
from telephony.sip.message import SipMessage, parse
from telephony.sip.policy import SipPolicy

SDP = ("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n")


class FakeClock:
    """The gateway's clock (``gw.now``) and its SIP timers' wait (``gw.timer_wait``): time moves only
    when the test says so, so a retransmission or a timeout happens exactly when told."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t
        self.deadlines: list[float] = []  # of the timer waits pending right now
        self._changed = asyncio.Event()  # replaced at each change: time moved, a wait began or ended

    def __call__(self) -> float:
        return self.t

    @property
    def sleepers(self) -> int:
        return len(self.deadlines)

    def _signal(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self._signal()

    async def wait(self, done: asyncio.Event, seconds: float) -> bool:
        """A ``timers.Wait`` on this clock: True once ``done`` is set, False when ``seconds`` of fake
        time have passed first."""
        deadline = self.t + seconds
        self.deadlines.append(deadline)
        self._signal()
        try:
            while not done.is_set() and self.t < deadline:
                await _first(done.wait(), self._changed.wait())
            return done.is_set()
        finally:
            self.deadlines.remove(deadline)
            self._signal()

    async def sleeping(self, n: int = 1, bound_s: float = 10.0) -> None:
        """Wait until ``n`` timer waits are pending, so an ``advance`` lands on them (the bound only
        stops a broken test from hanging)."""
        async def wait() -> None:
            while self.sleepers < n:
                await self._changed.wait()
        await asyncio.wait_for(wait(), bound_s)

    async def run_until(self, aw, bound_s: float = 10.0):
        """Await ``aw`` while jumping the clock to each pending timer's deadline as it comes (what a
        real clock would do, without the waiting); the bound only stops a broken test from hanging."""
        async def drive():
            task = asyncio.ensure_future(aw)
            while not task.done():
                ahead = [d for d in self.deadlines if d > self.t]
                if ahead:
                    self.advance(min(ahead) - self.t)
                else:
                    await _first(task, self._changed.wait())
            return task.result()
        return await asyncio.wait_for(drive(), bound_s)


async def _first(*aws) -> None:
    """Wait for the first of ``aws`` to finish and cancel the rest (never cancels a given task)."""
    futures = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for f, a in zip(futures, aws, strict=True):
            if f is not a:
                f.cancel()


def sdp(ip: str = "127.0.0.1", port: int = 40000, direction: str = "sendrecv") -> bytes:
    return SDP.format(ip=ip, port=port, direction=direction).encode()


def request(method: str, call_id: str, *, branch: str = "z9hG4bKx", cseq: int = 1, from_tag: str = "ft",
            to_tag: str = "", body: bytes = b"", uri: str = "sip:100@127.0.0.1", src: str = "127.0.0.1:5999",
            extra: str = "", ctype: str = "application/sdp", user: str = "t") -> bytes:
    to = f"<{uri}>" + (f";tag={to_tag}" if to_tag else "")
    head = (f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch={branch};rport\r\n"
            f"From: <sip:{user}@127.0.0.1>;tag={from_tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\nContact: <sip:{user}@{src}>\r\nMax-Forwards: 70\r\n{extra}"
            + (f"Content-Type: {ctype}\r\n" if body else "") + f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def digest(auth_header: str, *, user: str, password: str, method: str, uri: str, nc: int = 1,
           realm: str = "talky") -> str:
    chal = parse_digest(auth_header)
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    resp = hashlib.md5(f"{ha1}:{chal['nonce']}:{nc:08x}:c0ffee:auth:{ha2}".encode()).hexdigest()
    return (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{chal["nonce"]}", uri="{uri}", '
            f'response="{resp}", qop=auth, nc={nc:08x}, cnonce="c0ffee", algorithm=MD5\r\n')


def ha1(user: str, password: str, realm: str = "talky") -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


class Wire:
    """The gateway plus everything it sent, by destination."""

    def __init__(self, gw: SIPMediaGateway, clock: FakeClock) -> None:
        self.gw, self.clock = gw, clock
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.history: list[tuple[float, bytes]] = []  # (fake time, datagram) of every send, never cleared
        self._sent_event = asyncio.Event()
        gw.transport.sendto = self._sendto
        gw.port = 5060

    def _sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))
        self.history.append((self.clock(), data))
        self._sent_event.set()

    def feed(self, raw: bytes, src: tuple[str, int] = ("127.0.0.1", 5999), local_ip: str = "127.0.0.1") -> None:
        self.gw._on_datagram(raw, src, local_ip)

    def take(self) -> list[tuple[SipMessage, tuple[str, int]]]:
        out = [(parse(d), a) for d, a in self.sent]
        self.sent.clear()
        return out

    def peek(self) -> list[SipMessage]:
        """What the gateway has sent so far, without forgetting it."""
        return [parse(d) for d, _ in self.sent]

    def statuses(self) -> list[int]:
        return [m.status for m, _ in self.take() if m.status]

    async def until(self, pred, bound_s: float = 10.0, *, count: int = 1) -> SipMessage:
        """Wait until the gateway has sent ``count`` messages matching ``pred`` and return the last
        (woken by each send; the bound only stops a broken test from hanging)."""
        async def wait() -> SipMessage:
            while True:
                self._sent_event.clear()
                found = [m for m in (parse(data) for data, _addr in self.sent) if pred(m)]
                if len(found) >= count:
                    return found[count - 1]
                await self._sent_event.wait()
        return await asyncio.wait_for(wait(), bound_s)

    async def call(self, call_id: str, *, src=("127.0.0.1", 5999), body: bytes | None = None, ack: bool = True,
                   extra: str = "", local_ip: str = "127.0.0.1") -> SipMessage:
        """INVITE (and ACK) a call; returns the 200 OK."""
        host = f"{src[0]}:{src[1]}"
        self.feed(request("INVITE", call_id, branch=f"z9hG4bK{call_id}", body=body or sdp(src[0]), src=host,
                          extra=extra), src, local_ip)
        ok = await self.until(lambda m: m.status == 200 and m.call_id == call_id and m.cseq[1] == "INVITE")
        if ack:
            self.feed(request("ACK", call_id, branch=f"z9hG4bKack{call_id}", to_tag=ok.to_tag, src=host), src)
        return ok


def make_gateway(tmp_path=None, *, accounts: dict[str, str] | None = None, policy: SipPolicy | None = None,
                 host: str = "127.0.0.1", advertise: str | None = None, max_calls: int = 20,
                 ended: list | None = None) -> tuple[SIPMediaGateway, FakeClock]:
    clock = FakeClock()
    ended = ended if ended is not None else []

    async def on_end(call, stats, path):
        ended.append(call.end_reason)

    hooks = GatewayHooks(on_call_ended=on_end, lookup_ha1=(accounts or {}).get, open_mode=lambda: not accounts)
    gw = SIPMediaGateway(host=host, port=0, rtp_ports=(42000, 42998), agent_factory=lambda c: EchoAgent(),
                         hooks=hooks, max_calls=max_calls, rtp_timeout_s=30.0, policy=policy or SipPolicy(),
                         clock=clock, advertise=advertise)
    gw.rtp_host = "127.0.0.1"  # even a 0.0.0.0 gateway keeps its test RTP sockets on loopback
    gw.timer_wait = clock.wait  # 200 OK / BYE retransmissions run on the fake clock too
    gw.ended = ended
    return gw, clock
