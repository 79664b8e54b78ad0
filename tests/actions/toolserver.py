"""A tiny HTTP/1.1 server on 127.0.0.1 standing in for an operator's tool or webhook endpoint:
records every request (method, path, headers, body), answers from a script of (status, body)
(the last one repeated), and can hold a response until the test sets ``gate`` (a slow tool
driven by an event, not by sleeping)."""

from __future__ import annotations

import asyncio
import json


class ToolServer:
    def __init__(self, replies: list[tuple[int, bytes | dict]] | None = None, *, gated: bool = False,
                 headers: dict | None = None) -> None:
        self.replies = replies or [(200, {"ok": True})]
        self.extra_headers = headers or {}
        self.requests: list[dict] = []
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.arrived = asyncio.Event()
        self.port = 0
        self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> ToolServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.gate.set()
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            length = int({k.lower(): v for k, v in headers.items()}.get("content-length", "0"))
            body = await reader.readexactly(length)
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            self.arrived.set()
            await self.gate.wait()
            status, payload = self.replies[min(len(self.requests) - 1, len(self.replies) - 1)]
            data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
            extra = "".join(f"{k}: {v}\r\n" for k, v in self.extra_headers.items())
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                         f"{extra}Connection: close\r\n\r\n".encode() + data)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def json(self, i: int = -1) -> dict:
        return json.loads(self.requests[i]["body"])
