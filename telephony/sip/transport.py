"""The SIP UDP socket: datagrams in with the local address they arrived on, datagrams out, and a
listener that either keeps listening or says loudly that it stopped.

Why not ``loop.create_datagram_endpoint``: a bridge bound to 0.0.0.0 must put in its SDP and Contact
the address the phone reached it on, which only ``recvmsg`` with ``IP_PKTINFO`` tells. Sends never
resolve names (the destination is always a packet's source address, already an IP) and never raise
into the caller: an unsendable reply is counted and dropped.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Callable

log = logging.getLogger("telephony.bridge")
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_PKTINFO = struct.Struct("=I4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr (header destination)
_BATCH = 64  # datagrams read per wake-up before yielding to other work (the media clock)
_TRANSIENT = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EAGAIN, errno.EINTR,
              errno.ENOBUFS, errno.ENOMEM, errno.EMSGSIZE}

OnDatagram = Callable[[bytes, tuple[str, int], str | None], None]


class SipTransport:
    """One non-blocking UDP socket read with ``add_reader``; ``on_datagram(data, src, local_ip)``."""

    def __init__(self, on_datagram: OnDatagram, on_failure: Callable[[BaseException], None]) -> None:
        self.on_datagram = on_datagram
        self.on_failure = on_failure
        self.sock: socket.socket | None = None
        self.listening = False
        self.received = self.truncated = self.send_errors = self.handler_errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, host: str, port: int) -> tuple[str, int]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)  # bursts (load tests, a REGISTER storm)
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)
        self.listening = True
        return sock.getsockname()

    def close(self) -> None:
        if self.sock is not None:
            if self._loop is not None and self.listening:
                self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
        self.listening = False

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendto(data, addr)
        except (OSError, OverflowError, ValueError, TypeError):  # full buffer, bad address: drop, count
            self.send_errors += 1

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        for _ in range(_BATCH):
            try:
                data, ancdata, flags, src = sock.recvmsg(65536, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _TRANSIENT:
                    continue
                self._fail(exc)
                return
            self.received += 1
            if flags & socket.MSG_TRUNC:
                self.truncated += 1
                continue
            local_ip = None
            for level, kind, value in ancdata:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= _PKTINFO.size:
                    local_ip = socket.inet_ntoa(_PKTINFO.unpack_from(value)[2])
            try:
                self.on_datagram(data, src, local_ip)
            except Exception:  # noqa: BLE001 - the handler guards itself; this is the last line of defence
                self.handler_errors += 1
                if self.handler_errors <= 10 or self.handler_errors % 1000 == 0:
                    log.exception("SIP datagram handler failed (%d so far)", self.handler_errors)

    def _fail(self, exc: BaseException) -> None:
        log.critical("SIP listener failed: %s — the bridge is no longer listening", exc)
        if self.sock is not None and self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
        self.listening = False
        self.on_failure(exc)
