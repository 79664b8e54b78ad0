"""Deepgram Flux streaming STT over the ``websockets`` library (wss://api.deepgram.com/v2/listen).

``send()`` only appends to a buffer; a sender task ships ~80 ms binary frames (Deepgram's
recommendation) so the receiver is never blocked. On an unexpected close the session reconnects
(bounded, with backoff) and resends everything not yet sent; event times are shifted by the audio
already sent on earlier connections, so they stay on the call's audio clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .base import CLOSED, STT, AudioFormat, STTError, STTSession, TurnEvent, Word, queued_events

log = logging.getLogger(__name__)
USER_AGENT = "TalkyAI-VoiceAgent/1.0"


def _kind_for_status(status: int) -> str:
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limit"
    return "server" if status >= 500 else "bad_request"


class FluxSession(STTSession):
    def __init__(self, stt: FluxSTT, fmt: AudioFormat, params: dict) -> None:
        self.stt = stt
        self.fmt = fmt
        self.params = params
        self.chunk_bytes = fmt.bytes_per_second * 80 // 1000
        self._buf = bytearray()
        self._have_audio = asyncio.Event()
        self._events: asyncio.Queue = asyncio.Queue()
        self._ws = None
        self._closing = False
        self._closed = False
        self._offset_s = 0.0  # audio seconds sent on earlier connections
        self._conn_sent = 0  # bytes sent on this connection
        self.sent_bytes = 0
        self.reconnects = 0
        self.request_id: str | None = None
        self._task: asyncio.Task | None = None

    @property
    def audio_seconds(self) -> float:  # type: ignore[override]
        return self.sent_bytes / self.fmt.bytes_per_second

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._run(), name="flux-session")

    async def _connect(self) -> None:
        query = {"model": self.stt.model, "encoding": self.fmt.encoding, "sample_rate": self.fmt.sample_rate}
        query.update({k: v for k, v in self.params.items() if v is not None})
        url = f"{self.stt.url}?{urlencode(query)}"
        try:
            self._ws = await asyncio.wait_for(connect(
                url, additional_headers={"Authorization": f"Token {self.stt.api_key}"},
                user_agent_header=USER_AGENT), self.stt.connect_timeout)
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise STTError(f"Deepgram refused the connection: HTTP {status}", kind=_kind_for_status(status),
                           status=status, provider="deepgram") from None
        except (TimeoutError, OSError, websockets.exceptions.InvalidURI, websockets.exceptions.InvalidHandshake) as exc:
            raise STTError(f"cannot reach Deepgram at {self.stt.url}: {type(exc).__name__}: {exc}",
                           kind="connection", provider="deepgram") from None
        self._conn_sent = 0

    async def _run(self) -> None:
        attempts = 0
        while True:
            sender = asyncio.create_task(self._sender())
            try:
                await self._receiver()
                return  # closed after CloseStream: done
            except ConnectionClosed as exc:
                if self._closing:
                    return
                attempts += 1
                log.warning("Flux connection closed unexpectedly (%s); reconnecting (%d)", exc, attempts)
            except STTError as exc:
                await self._events.put(exc)
                return
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
            if attempts > self.stt.max_reconnects:
                await self._events.put(STTError("Flux connection lost and reconnects failed", kind="closed",
                                                provider="deepgram"))
                return
            self._offset_s += self._conn_sent / self.fmt.bytes_per_second
            await asyncio.sleep(min(0.1 * 2 ** (attempts - 1), 2.0))
            try:
                await self._connect()
                self.reconnects += 1
            except STTError as exc:
                if exc.kind == "auth" or attempts > self.stt.max_reconnects:
                    await self._events.put(exc)
                    return

    async def _sender(self) -> None:
        ws = self._ws
        while True:
            if len(self._buf) < self.chunk_bytes and not self._closing:
                self._have_audio.clear()
                await self._have_audio.wait()
                continue
            if not self._buf:  # closing and everything sent
                await ws.send(json.dumps({"type": "CloseStream"}))
                return
            chunk = bytes(self._buf[: self.chunk_bytes])
            await ws.send(chunk)
            del self._buf[: len(chunk)]  # only dropped once handed to the socket
            self._conn_sent += len(chunk)
            self.sent_bytes += len(chunk)
            if self._closing and not self._buf:
                await ws.send(json.dumps({"type": "CloseStream"}))
                return

    async def _receiver(self) -> None:
        async for raw in self._ws:
            if isinstance(raw, bytes):
                continue
            try:
                msg = json.loads(raw)
            except ValueError:
                log.warning("Flux sent a non-JSON text frame")
                continue
            kind = msg.get("type")
            if kind == "TurnInfo":
                await self._events.put(self._turn_event(msg))
            elif kind == "Connected":
                self.request_id = msg.get("request_id")
            elif kind == "Error":
                raise STTError(f"Flux error {msg.get('code')}: {msg.get('description')}", kind="server",
                               provider="deepgram")
            elif kind == "ConfigureFailure":
                log.warning("Flux rejected Configure: %s", msg.get("description"))
            elif kind == "Warning":
                log.warning("Flux warning %s: %s", msg.get("code"), msg.get("description"))
        if not self._closing:
            raise ConnectionClosed(None, None)

    def _turn_event(self, msg: dict) -> TurnEvent:
        off = self._offset_s
        words = tuple(Word(w.get("word", ""), (w["start"] + off) if w.get("start") is not None else None,
                           (w["end"] + off) if w.get("end") is not None else None, w.get("confidence"))
                      for w in msg.get("words") or [])
        return TurnEvent(kind=msg.get("event", "Update"), turn_index=int(msg.get("turn_index", 0)),
                         transcript=msg.get("transcript") or "", words=words,
                         audio_window_start=float(msg.get("audio_window_start") or 0) + off,
                         audio_window_end=float(msg.get("audio_window_end") or 0) + off,
                         end_of_turn_confidence=float(msg.get("end_of_turn_confidence") or 0),
                         trigger=msg.get("trigger"), received_at=time.monotonic())

    # --- STTSession --------------------------------------------------------------------------
    async def send(self, audio: bytes) -> None:
        if self._closing:
            return
        self._buf += audio
        if len(self._buf) >= self.chunk_bytes:
            self._have_audio.set()

    def events(self) -> AsyncIterator[TurnEvent]:
        return queued_events(self._events)

    async def configure(self, *, eot_threshold=None, eager_eot_threshold=None, eot_timeout_ms=None) -> None:
        thresholds = {k: v for k, v in (("eot_threshold", eot_threshold),
                                        ("eager_eot_threshold", eager_eot_threshold),
                                        ("eot_timeout_ms", eot_timeout_ms)) if v is not None}
        self.params.update(thresholds)
        if self._ws is not None and thresholds:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(json.dumps({"type": "Configure", "thresholds": thresholds}))

    async def close(self, timeout: float = 2.0) -> None:
        if self._closed:
            return
        self._closing = True
        self._have_audio.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except (TimeoutError, Exception):  # noqa: BLE001
                self._task.cancel()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        self._closed = True
        await self._events.put(CLOSED)


class FluxSTT(STT):
    name = "deepgram"

    def __init__(self, *, api_key: str, url: str = "wss://api.deepgram.com/v2/listen",
                 model: str = "flux-general-en", max_reconnects: int = 5, connect_timeout: float = 10.0) -> None:
        if not api_key:
            raise STTError("DEEPGRAM_API_KEY is not set", kind="auth", provider="deepgram")
        self.api_key = api_key
        self.url = url
        self.model = model
        self.max_reconnects = max_reconnects
        self.connect_timeout = connect_timeout

    def __repr__(self) -> str:
        return f"FluxSTT(url={self.url!r}, model={self.model!r})"

    async def open(self, fmt: AudioFormat, *, eot_threshold: float = 0.7, eager_eot_threshold: float | None = None,
                   eot_timeout_ms: int = 5000) -> FluxSession:
        params = {"eot_threshold": eot_threshold, "eager_eot_threshold": eager_eot_threshold,
                  "eot_timeout_ms": eot_timeout_ms}
        session = FluxSession(self, fmt, params)
        await session.start()
        return session
