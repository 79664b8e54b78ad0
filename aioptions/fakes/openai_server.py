"""A local fake of the OpenAI-compatible chat API: Groq's /openai/v1 and OpenAI's /v1, SSE streaming.

Plain asyncio HTTP/1.1 with keep-alive (JSON bodies with Content-Length, SSE with chunked transfer
encoding), so a pooled SDK connection is reused as with the real services, and it runs in pytest and
in benchmarks alike (``async with FakeOpenAIServer(...) as srv``; ``aioptions.fakes.threaded.in_thread``
for synchronous callers).

Routes: POST {/openai/v1,/v1}/chat/completions (stream or not), GET {/openai/v1,/v1}/models.
Scripting:
- ``reply``: a string, a list (one per chat request, the last repeated), a callable(messages) -> str,
  or ``ECHO`` (repeat the last user message).
- ``ttft_ms``: delay between the role chunk and the first content token; ``token_ms``: between tokens.
  Tokens are the reply's words (each with its trailing space).
- ``fail``: None, 429 (JSON body + ``retry-after``), 500, 404 (``model_not_found``), "decommissioned"
  (400 ``model_decommissioned``), "stream_error" (an ``error`` object inside the stream after the
  first token), "hang" (headers, then nothing) — or a list of these, one per chat request (last repeated).
- ``reasoning``: the model's thinking, delivered as Groq documents it (console.groq.com/docs/reasoning,
  groq SDK ``completion_create_params``): gpt-oss in ``delta.reasoning`` unless ``include_reasoning``
  is false; Qwen3 as ``<think>...</think>`` inside ``content`` by default (``reasoning_format`` raw),
  in ``delta.reasoning`` with ``parsed``, not at all with ``hidden`` or ``reasoning_effort: none``.
  The OpenAI routes send it as ``delta.reasoning`` unless ``include_reasoning`` is false.
  ``think_in_content=True`` puts it in ``content`` whatever the request says (a misbehaving server),
  cut into 3-character pieces so the tags straddle chunk boundaries.
- Groq validation as documented: ``reasoning_format`` with ``include_reasoning`` is a 400, and so is a
  ``reasoning_effort`` the model does not take (gpt-oss: low|medium|high; qwen3: none|default).
- ``api_key``: answer 401 to any other bearer token. ``models``: what GET /models lists; chat with
  a model not listed gets a 404 ``model_not_found``.
- Tool calls: a reply may be a ``ToolCalls`` (optional text first, then one or more function calls),
  streamed as OpenAI documents it (platform.openai.com/docs/guides/function-calling, streaming):
  ``choices[0].delta.tool_calls[i]`` with ``index``, then ``id``/``type``/``function.name`` once and
  ``function.arguments`` in ``arg_piece``-character fragments, ``finish_reason: "tool_calls"``.
  ``interleave=True`` alternates the fragments of several calls. Groq streams the same shape.
Usage as each provider sends it: Groq ``x_groq.usage`` on the final chunk; OpenAI a ``choices: []``
chunk with ``usage`` when ``stream_options.include_usage`` is set.
Records: ``requests`` (method, path, headers, json, at, conn: which TCP connection), ``cancelled``
(streams the client cut off), ``connections`` (TCP connections accepted).
This file holds the options, the HTTP plumbing and the error replies; openai_stream.py the reply's wire format.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from .openai_stream import reasoning_problem, stream_chat, usage

MODELS = [
    "openai/gpt-oss-20b",
    "openai/gpt-oss-120b",
    "qwen/qwen3-32b",
    "gpt-4o-mini",
    "gpt-4.1-mini",
    "gpt-5-mini",
]
ECHO = "__echo__"


@dataclass
class ToolCalls:
    """A scripted assistant turn that calls functions: ``calls`` are (name, arguments) where the
    arguments are a dict (sent as JSON) or a raw string (to send invalid JSON on purpose)."""

    calls: list[tuple[str, dict | str]]
    text: str = ""
    arg_piece: int = 5
    interleave: bool = False

    def arguments(self, i: int) -> str:
        args = self.calls[i][1]
        return args if isinstance(args, str) else json.dumps(args)


Reply = str | ToolCalls | list | Callable[[list[dict]], "str | ToolCalls"]
Fail = int | str | None


class FakeOpenAIServer:
    def __init__(
        self,
        *,
        reply: Reply = "Sure, Tuesday at three works.",
        ttft_ms: float = 300,
        token_ms: float = 10,
        fail: Fail | list[Fail] = None,
        models: list[str] | None = None,
        api_key: str | None = None,
        reasoning: str | None = None,
        think_in_content: bool = False,
    ) -> None:
        self.reply = reply
        self.reasoning = reasoning
        self.think_in_content = think_in_content
        self.ttft = ttft_ms / 1000
        self.token_s = token_ms / 1000
        self.fail = fail
        self.models = models or list(MODELS)
        self.api_key = api_key
        self.requests: list[dict] = []
        self.cancelled = 0
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = 0

    @property
    def groq_base_url(self) -> str:
        """For ``AsyncGroq(base_url=...)``: the host only, the SDK adds /openai/v1."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> FakeOpenAIServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            for task in list(self._tasks):  # hanging streams and idle keep-alive connections
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    async def __aenter__(self) -> FakeOpenAIServer:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def chat_requests(self) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def _pick(self, value, n: int):
        return value[min(n, len(value) - 1)] if isinstance(value, list) and value else value

    def _reply_for(self, messages: list[dict], n: int) -> str | ToolCalls:
        if self.reply == ECHO:
            users = [m for m in messages if m.get("role") == "user"]
            return str(users[-1].get("content", "")) if users else ""
        if callable(self.reply):
            return self.reply(messages)
        return self._pick(self.reply, n)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self.connections += 1
        conn = self.connections
        try:
            while await self._one_request(reader, writer, conn):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:  # stop() ends hanging streams; asyncio would log a cancelled handler
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, asyncio.CancelledError):
                pass

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int) -> bool:
        """Serve one request; False when the connection should close."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed an idle connection
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        data = json.loads(body) if body else {}
        self.requests.append(
            {"method": method, "path": path, "headers": headers, "json": data, "at": time.monotonic(),
             "conn": conn}
        )
        path = path.split("?", 1)[0]
        if self.api_key and headers.get("authorization") != f"Bearer {self.api_key}":
            await self._json(
                writer,
                401,
                {
                    "error": {
                        "message": "Invalid API Key",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
            )
        elif method == "GET" and path in ("/openai/v1/models", "/v1/models"):
            await self._json(
                writer,
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": m,
                            "object": "model",
                            "created": 0,
                            "owned_by": "fake",
                            "active": True,
                            "context_window": 131072,
                        }
                        for m in self.models
                    ],
                },
            )
        elif method == "POST" and path in ("/openai/v1/chat/completions", "/v1/chat/completions"):
            return await self._chat(writer, path, data)
        else:
            await self._json(
                writer,
                404,
                {
                    "error": {
                        "message": f"Unknown request URL: {method} {path}",
                        "type": "invalid_request_error",
                        "code": "unknown_url",
                    }
                },
            )
        return headers.get("connection", "").lower() != "close"

    async def _json(self, writer, status: int, obj: dict, extra: dict | None = None) -> None:
        body = json.dumps(obj).encode()
        hdrs = {"Content-Type": "application/json", "Content-Length": str(len(body)), **(extra or {})}
        writer.write(
            f"HTTP/1.1 {status} X\r\n".encode()
            + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()).encode()
            + b"\r\n"
            + body
        )
        await writer.drain()

    async def _chat(self, writer, path: str, data: dict) -> bool:
        n = len(self.chat_requests()) - 1
        fail = self._pick(self.fail, n)
        model = data.get("model")
        if fail == 429:
            await self._json(
                writer,
                429,
                {
                    "error": {
                        "message": f"Rate limit reached for model `{model}`. Please try again in 1s.",
                        "type": "tokens",
                        "code": "rate_limit_exceeded",
                    }
                },
                {"retry-after": "1"},
            )
            return True
        if fail == 500:
            await self._json(
                writer, 500, {"error": {"message": "Internal Server Error", "type": "internal_server_error"}}
            )
            return True
        if fail == "decommissioned":
            await self._json(
                writer,
                400,
                {
                    "error": {
                        "message": f"The model `{model}` has been decommissioned",
                        "type": "invalid_request_error",
                        "code": "model_decommissioned",
                    }
                },
            )
            return True
        if fail == 404 or model not in self.models:
            await self._json(
                writer,
                404,
                {
                    "error": {
                        "message": f"The model `{model}` does not exist or you do not have access to it.",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                    }
                },
            )
            return True
        problem = reasoning_problem(path, data)
        if problem:
            await self._json(
                writer, 400, {"error": {"message": problem, "type": "invalid_request_error"}}
            )
            return True
        text = self._reply_for(data.get("messages", []), n)
        calls = text if isinstance(text, ToolCalls) else None
        if calls is not None:
            text = calls.text
        if not data.get("stream"):
            message: dict = {"role": "assistant", "content": text or None}
            if calls is not None:
                message["tool_calls"] = [
                    {"id": f"call_{n}_{i}", "type": "function",
                     "function": {"name": name, "arguments": calls.arguments(i)}}
                    for i, (name, _) in enumerate(calls.calls)]
            choice = {"index": 0, "finish_reason": "tool_calls" if calls else "stop", "message": message}
            await self._json(
                writer,
                200,
                {
                    "id": f"chatcmpl-{n}",
                    "object": "chat.completion",
                    "model": model,
                    "created": int(time.time()),
                    "usage": usage(data, text),
                    "choices": [choice],
                },
            )
            return True
        return await self._sse(writer, path, data, text, fail, n, calls)

    async def _sse(self, writer, path: str, data: dict, text: str, fail: Fail, n: int,
                   calls: ToolCalls | None = None) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        await writer.drain()
        try:
            await stream_chat(self, writer, path, data, text, fail, n, calls)
            return True
        except ConnectionError:
            self.cancelled += 1
            return False
        except asyncio.CancelledError:
            if self._server is not None and not self._server.is_serving():
                raise  # stop(): not a client cancel
            self.cancelled += 1
            raise
