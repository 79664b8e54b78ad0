"""``run_sip_bridge --metrics-port N``: GET /metrics on 127.0.0.1 only, served on the bridge's own loop.

Why not prometheus-client's ``start_http_server``: it scrapes from a thread, while the sessions and
the clock it reads are mutated on the event loop; serving on the loop keeps collection lock-free
(a scrape costs well under a millisecond of loop time). Why loopback only, with no auth: a node
agent or a Prometheus on the same host scrapes it; anything else goes through the web process's
/metrics (staff). The parser is bounded: one request line and headers up to 8 KB within 5 s, any
other path is 404, then the connection closes. No secrets are in the output.
"""

from __future__ import annotations

import asyncio
import logging

from .prom import exposition

log = logging.getLogger("telephony.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MAX_HEAD = 8192


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if method in ("GET", "HEAD") and path.split("?", 1)[0] == "/metrics":
            body = exposition()
            status = "200 OK"
            ctype = CONTENT_TYPE
        else:
            body, status, ctype = b"not found\n", "404 Not Found", "text/plain"
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode("latin-1") + (b"" if method == "HEAD" else body))
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int, host: str = "127.0.0.1") -> asyncio.Server:
    """Start the loopback metrics endpoint; ``port`` 0 picks a free one (``server.sockets``)."""
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError("the bridge's metrics endpoint binds loopback only")
    server = await asyncio.start_server(_handle, host, port, limit=_MAX_HEAD)
    log.info("metrics on http://%s:%d/metrics", host, server.sockets[0].getsockname()[1])
    return server
