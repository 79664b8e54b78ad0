"""A local fake of the OpenAI-compatible chat API (Groq's /openai/v1 and OpenAI's /v1), SSE streaming.

Plain asyncio HTTP/1.1 (responses end by closing the connection), so it runs in pytest and in
benchmarks alike. Fixed ``ttft_ms`` and ``token_ms``; ``reply`` is a string, a list (one per request,
last repeated) or a callable(messages) -> str. Error injection via ``fail``: None, 429, 500, 404,
"stream_error" or "hang". Every request is recorded (path, headers, JSON body).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

MODELS = ["openai/gpt-oss-20b", "openai/gpt-oss-120b", "qwen/qwen3-32b", "gpt-4o-mini", "gpt-4.1-mini", "gpt-5-mini"]


class FakeOpenAIServer:
    def __init__(self, *, reply: str | list[str] | Callable[[list[dict]], str] = "Sure, Tuesday at three works.",
                 ttft_ms: float = 300, token_ms: float = 10, fail: int | str | None = None,
                 models: list[str] | None = None, api_key: str | None = None) -> None:
        self.reply = reply
        self.ttft = ttft_ms / 1000
        self.token_s = token_ms / 1000
        self.fail = fail
        self.models = models or list(MODELS)
        self.api_key = api_key
        self.requests: list[dict] = []
        self.cancelled = 0
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def groq_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> FakeOpenAIServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> FakeOpenAIServer:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def chat_requests(self) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def _reply_for(self, messages: list[dict]) -> str:
        if callable(self.reply):
            return self.reply(messages)
        if isinstance(self.reply, list):
            i = min(len(self.chat_requests()) - 1, len(self.reply) - 1)
            return self.reply[i]
        return self.reply

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
            data = json.loads(body) if body else {}
            self.requests.append({"method": method, "path": path, "headers": headers, "json": data,
                                  "at": time.monotonic()})
            if self.api_key and headers.get("authorization") != f"Bearer {self.api_key}":
                await self._json(writer, 401, {"error": {"message": "Invalid API Key", "code": "invalid_api_key"}})
            elif method == "GET" and path.endswith("/models"):
                await self._json(writer, 200, {"object": "list", "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]})
            elif method == "POST" and path.endswith("/chat/completions"):
                await self._chat(writer, path, data)
            else:
                await self._json(writer, 404, {"error": {"message": f"no route {path}"}})
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            try:
                writer.close()
                await writer.wait_closed()
            except Exception:  # noqa: BLE001
                pass

    async def _json(self, writer, status: int, obj: dict, extra: dict | None = None) -> None:
        body = json.dumps(obj).encode()
        hdrs = {"Content-Type": "application/json", "Content-Length": str(len(body)), **(extra or {})}
        writer.write(f"HTTP/1.1 {status} X\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()).encode()
                     + b"\r\n" + body)
        await writer.drain()

    async def _chat(self, writer, path: str, data: dict) -> None:
        fail = self.fail
        if fail == 429:
            await self._json(writer, 429, {"error": {"message": "Rate limit reached", "type": "tokens",
                                                     "code": "rate_limit_exceeded"}}, {"retry-after": "1"})
            return
        if fail == 500:
            await self._json(writer, 500, {"error": {"message": "upstream exploded"}})
            return
        if fail == 404 or data.get("model") not in self.models:
            await self._json(writer, 404, {"error": {"message": f"The model `{data.get('model')}` does not exist",
                                                     "type": "invalid_request_error", "code": "model_not_found"}})
            return
        groq = path.startswith("/openai/")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     b"Connection: close\r\n\r\n")
        await writer.drain()
        cid = f"chatcmpl-{len(self.requests)}"

        def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": data["model"],
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            return f"data: {json.dumps(obj)}\n\n".encode()

        try:
            if fail == "hang":
                await asyncio.sleep(3600)
            writer.write(chunk({"role": "assistant", "content": ""}))
            await writer.drain()
            await asyncio.sleep(self.ttft)
            if fail == "stream_error":
                writer.write(b'data: {"error": {"message": "model overloaded mid-stream"}}\n\n')
                await writer.drain()
                return
            text = self._reply_for(data.get("messages", []))
            tokens = [w + " " for w in text.split(" ")]
            tokens[-1] = tokens[-1].rstrip(" ")
            for i, tok in enumerate(tokens):
                if i:
                    await asyncio.sleep(self.token_s)
                writer.write(chunk({"content": tok}))
                await writer.drain()
            usage = {"prompt_tokens": sum(len(str(m.get("content", "")).split()) for m in data.get("messages", [])),
                     "completion_tokens": len(tokens), "total_tokens": 0}
            if groq:
                writer.write(chunk({}, "stop", x_groq={"id": "req_fake", "usage": usage}))
            else:
                writer.write(chunk({}, "stop"))
                if (data.get("stream_options") or {}).get("include_usage"):
                    obj = {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": data["model"],
                           "choices": [], "usage": usage}
                    writer.write(f"data: {json.dumps(obj)}\n\n".encode())
            writer.write(b"data: [DONE]\n\n")
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            self.cancelled += 1
            raise
