"""A fake Cartesia TTS server on 127.0.0.1 that speaks the 4.x WebSocket protocol (providers.md §3.5, §3.8).

Why: the Cartesia client is tested through the official SDK, and the pipeline tests and benchmarks need
a TTS that behaves like the real one (TTFB, streamed chunks, cancel, errors) without the internet.
The audio is real (fake_audio.py): a tone whose frequency depends on the voice id (so a test can tell
which voice spoke), encoded in the requested encoding and sample rate, as long as the text (``ms_per_char``).

Usable from plain asyncio code::

    async with FakeCartesiaServer(ttfb_ms=90) as srv:
        tts = CartesiaTTS(api_key="k", voice_id="v", base_url=srv.http_url, ws_url=srv.ws_url)
"""

from __future__ import annotations

import asyncio
import base64
import collections
import itertools
import json
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlparse

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

# fake_audio.py makes the audio; the ``x as x`` imports keep its helpers importable from here (tests do).
from .fake_audio import alaw_decode as alaw_decode
from .fake_audio import alaw_encode as alaw_encode
from .fake_audio import decode as decode
from .fake_audio import dominant_frequency as dominant_frequency
from .fake_audio import encode, tone, voice_frequency
from .fake_audio import ulaw_decode as ulaw_decode
from .fake_audio import ulaw_encode as ulaw_encode

# What Cartesia documents (docs.cartesia.ai/api-reference/tts/websocket and the Cartesia-Version
# header of every API reference page); the fake refuses anything else, so a client that drifts from
# the docs fails here rather than in production.
DOCUMENTED_VERSIONS = ("2024-06-10", "2024-11-13", "2025-04-16", "2026-03-01")
GENERATION_FIELDS = {"context_id", "model_id", "transcript", "voice", "output_format", "language", "continue",
                     "max_buffer_delay_ms", "add_timestamps", "add_phoneme_timestamps",
                     "use_normalized_timestamps", "flush", "generation_config", "pronunciation_dict_id"}
CANCEL_FIELDS = {"context_id", "cancel"}
ENCODINGS = {"pcm_s16le", "pcm_f32le", "pcm_mulaw", "pcm_alaw"}
SAMPLE_RATES = {8000, 16000, 22050, 24000, 44100, 48000}
_END, _FLUSH = object(), object()


@dataclass
class FakeContext:
    """What the fake knows about one context: the request log a test asserts on."""

    context_id: str
    conn_index: int
    voice: str
    model_id: str
    output_format: dict[str, Any]
    language: str | None
    transcripts: list[str] = field(default_factory=list)
    continues: list[bool] = field(default_factory=list)
    finished: bool = False  # continue:false received
    cancelled: bool = False
    done_sent: bool = False
    errored: bool = False
    chunks_sent: int = 0
    audio_bytes_sent: int = 0
    first_transcript_at: float | None = None
    first_chunk_at: float | None = None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue, repr=False)
    task: asyncio.Task | None = field(default=None, repr=False)


class FakeCartesiaServer:
    """WebSocket ``/tts/websocket`` plus ``GET /voices``; see the module docstring.

    Error injection (all attributes may be changed while running):
    - ``handshake_status``: reply to every handshake with this HTTP status (401, 429, 500...).
    - ``api_key``: if set, a handshake with another ``Authorization: Bearer`` gets 401.
    - ``error_voices``: ``{voice_id: (status_code, error_code, message)}`` -> in-band ``error``.
    - ``close_after_chunks``: close the socket (1011) after sending this many chunks on it; with
      ``close_on_text``, count only the chunks of the first context whose text contains it (and
      refuse later handshakes with ``reconnect_status`` if set: the provider stays down).
    """

    def __init__(self, *, ttfb_ms: float = 90.0, ms_per_char: float = 60.0,
                 max_ms_per_transcript: float = 8000.0, chunk_ms: float = 40.0, speedup: float = 4.0,
                 handshake_status: int | None = None,
                 api_key: str | None = None, error_voices: dict[str, tuple[int, str, str]] | None = None,
                 close_after_chunks: int | None = None, close_on_text: str | None = None,
                 reconnect_status: int | None = None) -> None:
        self.ttfb_ms = ttfb_ms
        self.ms_per_char = ms_per_char
        self.max_ms_per_transcript = max_ms_per_transcript
        self.chunk_ms = chunk_ms
        self.speedup = speedup  # audio seconds per wall second; <= 0 means as fast as possible
        self.handshake_status = handshake_status
        self.api_key = api_key
        self.error_voices: dict[str, tuple[int, str, str]] = dict(error_voices or {})
        self.close_after_chunks = close_after_chunks
        self.close_on_text = close_on_text
        self.reconnect_status = reconnect_status
        self.dropped = False  # an injected close happened
        # request logs
        self.handshakes: list[dict[str, str | None]] = []  # accepted and rejected, in order
        self.messages: list[tuple[int, dict[str, Any]]] = []  # (connection index, JSON message)
        self.contexts: dict[str, FakeContext] = {}
        self.requests_by_voice: collections.Counter[str] = collections.Counter()  # contexts per voice
        self.http_requests: list[str] = []
        self.connections_opened = 0
        self._server: Server | None = None
        self._conn_ids = itertools.count()
        self.host, self.port = "127.0.0.1", 0

    # lifecycle
    async def start(self) -> FakeCartesiaServer:
        self._server = await serve(self._handle, self.host, 0, process_request=self._process_request,
                                   compression=None, max_size=2**20)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeCartesiaServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def accepted_handshakes(self) -> int:
        return sum(1 for h in self.handshakes if h["status"] == "101")

    def messages_for(self, context_id: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m.get("context_id") == context_id]

    def _should_drop(self, ctx: FakeContext, sent_on_conn: int) -> bool:
        if self.close_after_chunks is None or self.dropped:
            return False
        if self.close_on_text is None:
            return sent_on_conn >= self.close_after_chunks
        return self.close_on_text in "".join(ctx.transcripts) and ctx.chunks_sent >= self.close_after_chunks

    # HTTP side: handshake checks and GET /voices
    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        auth = request.headers.get("Authorization")
        if path != "/tts/websocket":
            self.http_requests.append(request.path)
            if path == "/voices":
                data = [] if "starting_after=" in request.path else [
                    {"id": v, "name": v, "language": "en"} for v in sorted(self.requests_by_voice)]
                return _json_response(HTTPStatus.OK, {"data": data, "has_more": False})
            return _json_response(HTTPStatus.NOT_FOUND, {"error_code": "not_found", "message": "no route"})
        status = self.handshake_status
        if status is None and self.api_key is not None and auth != f"Bearer {self.api_key}":
            status = 401
        version = request.headers.get("cartesia-version")
        query_version = parse_qs(urlparse(request.path).query).get("cartesia_version")
        version = query_version[0] if query_version else version  # the query parameter wins (docs)
        if status is None and version not in DOCUMENTED_VERSIONS:
            status = 400
        self.handshakes.append({"path": request.path, "authorization": auth,
                                "cartesia_version": version,
                                "user_agent": request.headers.get("User-Agent"),
                                "status": str(status or 101)})
        if status is not None:
            return _json_response(HTTPStatus(status), {"error_code": "rejected", "title": "Rejected",
                                                       "message": f"fake handshake status {status}"})
        return None

    # WebSocket side
    async def _handle(self, ws: ServerConnection) -> None:
        idx = next(self._conn_ids)
        self.connections_opened += 1
        mine: list[FakeContext] = []
        sent = [0]  # chunks sent on this connection (close_after_chunks)
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    await _send(ws, _error(None, 400, "invalid_json", "message is not JSON"))
                    continue
                self.messages.append((idx, msg))
                await self._on_message(ws, idx, msg, mine, sent)
        except ConnectionClosed:
            pass
        finally:
            for ctx in mine:
                if ctx.task is not None:
                    ctx.task.cancel()

    async def _on_message(self, ws: ServerConnection, idx: int, msg: dict[str, Any],
                          mine: list[FakeContext], sent: list[int]) -> None:
        cid = msg.get("context_id")
        if not isinstance(cid, str) or not cid:
            await _send(ws, _error(None, 400, "missing_context_id", "context_id is required"))
            return
        ctx = self.contexts.get(cid)
        unknown = set(msg) - (CANCEL_FIELDS if "cancel" in msg else GENERATION_FIELDS)
        if unknown:
            await _send(ws, _error(cid, 400, "invalid_request", f"unknown fields {sorted(unknown)}"))
            return
        if msg.get("cancel"):
            if ctx is not None and not ctx.cancelled:
                ctx.cancelled = True
                if ctx.task is not None:
                    ctx.task.cancel()
            return
        if ctx is None:
            problem = _validate_request(msg)
            if problem:
                await _send(ws, _error(cid, 400, "invalid_request", problem))
                return
            voice = msg["voice"]["id"]
            ctx = FakeContext(cid, idx, voice, msg["model_id"], dict(msg["output_format"]),
                              msg.get("language"))
            self.contexts[cid] = ctx
            self.requests_by_voice[voice] += 1
            mine.append(ctx)
            if voice in self.error_voices:
                status, code, message = self.error_voices[voice]
                ctx.errored = True
                await _send(ws, _error(cid, status, code, message))
                return
            ctx.task = asyncio.create_task(self._run_context(ws, ctx, sent))
        if ctx.cancelled or ctx.errored:
            return
        if ctx.finished:
            await _send(ws, _error(cid, 400, "context_closed", "context already received continue=false"))
            return
        transcript = msg.get("transcript") or ""
        ctx.transcripts.append(transcript)
        ctx.continues.append(bool(msg.get("continue", False)))
        if transcript:
            if ctx.first_transcript_at is None:
                ctx.first_transcript_at = time.monotonic()
            ctx.queue.put_nowait(transcript)
        if msg.get("flush"):
            ctx.queue.put_nowait(_FLUSH)
        if not msg.get("continue", False):
            ctx.finished = True
            ctx.queue.put_nowait(_END)

    async def _run_context(self, ws: ServerConnection, ctx: FakeContext, sent: list[int]) -> None:
        fmt = ctx.output_format
        rate, enc = int(fmt["sample_rate"]), fmt["encoding"]
        freq = voice_frequency(ctx.voice)
        samples = 0  # phase position and audio clock
        t0: float | None = None
        flush_id = 0
        try:
            while True:
                item = await ctx.queue.get()
                if item is _END:
                    ctx.done_sent = True
                    await _send(ws, {"type": "done", "context_id": ctx.context_id, "done": True,
                                     "status_code": 200})
                    return
                if item is _FLUSH:
                    flush_id += 1
                    await _send(ws, {"type": "flush_done", "context_id": ctx.context_id, "done": False,
                                     "flush_done": True, "flush_id": flush_id, "status_code": 206})
                    continue
                if t0 is None:
                    assert ctx.first_transcript_at is not None
                    wait = ctx.first_transcript_at + self.ttfb_ms / 1000.0 - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    t0 = time.monotonic()
                total = int(rate * min(len(item) * self.ms_per_char, self.max_ms_per_transcript) / 1000.0)
                step = max(1, int(rate * self.chunk_ms / 1000.0))
                end = samples + total
                while samples < end:
                    n = min(step, end - samples)
                    if self.speedup > 0:
                        due = t0 + (samples / rate) / self.speedup
                        delay = due - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    data = encode(tone(freq, n, rate, samples), enc)
                    samples += n
                    if self._should_drop(ctx, sent[0]):
                        self.dropped = True
                        if self.reconnect_status is not None:
                            self.handshake_status = self.reconnect_status
                        await ws.close(code=1011, reason="fake: injected close")
                        return
                    await _send(ws, {"type": "chunk", "context_id": ctx.context_id, "done": False,
                                     "status_code": 206, "step_time": self.chunk_ms,
                                     "data": base64.b64encode(data).decode()})
                    sent[0] += 1
                    ctx.chunks_sent += 1
                    ctx.audio_bytes_sent += len(data)
                    if ctx.first_chunk_at is None:
                        ctx.first_chunk_at = time.monotonic()
        except (asyncio.CancelledError, ConnectionClosed):
            return


def _validate_request(msg: dict[str, Any]) -> str:
    """Why a first generation request is unacceptable ('' if fine), like the real API's 400s."""
    if not msg.get("model_id"):
        return "model_id is required"
    voice = msg.get("voice")
    if not (isinstance(voice, dict) and voice.get("mode") == "id" and isinstance(voice.get("id"), str)
            and voice["id"] and set(voice) == {"mode", "id"}):
        return "voice must be {'mode': 'id', 'id': <voice id>}"
    fmt = msg.get("output_format")
    if not isinstance(fmt, dict) or fmt.get("container") != "raw":
        return "output_format.container must be 'raw' on the WebSocket"
    if fmt.get("encoding") not in ENCODINGS:
        return f"unsupported encoding {fmt.get('encoding')!r}"
    if fmt.get("sample_rate") not in SAMPLE_RATES:
        return f"unsupported sample_rate {fmt.get('sample_rate')!r}"
    return ""


def _error(cid: str | None, status: int, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "context_id": cid, "done": True, "status_code": status, "error_code": code,
            "title": code.replace("_", " ").title(), "message": message, "request_id": "fake-req"}


async def _send(ws: ServerConnection, msg: dict[str, Any]) -> None:
    try:
        await ws.send(json.dumps(msg))
    except ConnectionClosed:
        pass


def _json_response(status: HTTPStatus, body: dict[str, Any]) -> Response:
    data = json.dumps(body).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return Response(status.value, status.phrase, headers, data)
