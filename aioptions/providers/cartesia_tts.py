"""Cartesia streaming TTS through the official ``cartesia`` 4.x SDK WebSocket (providers.md §3).

One WebSocket per ``CartesiaTTS`` object (= per call), opened on the first utterance and reused, because
a new connection costs TLS plus the upgrade on every turn. Each utterance is one Cartesia *context*:
text pieces go out as ``continue: true`` on that context, audio chunks come back routed by the SDK's
background reader into a per-context queue, which this module drains. Barge-in sends the context
``cancel`` and drops whatever still arrives for it. No Django import here; the API key is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

from cartesia import AsyncCartesia
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)
from websockets.protocol import State

from . import netpool
from .base import TTS, AudioFormat, TTSError, TTSUtterance

log = logging.getLogger(__name__)

PROVIDER = "cartesia"
# --- wire facts, one place (docs.cartesia.ai) ------------------------------------------------------
# Cartesia-Version: the API reference lists 2024-06-10, 2024-11-13, 2025-04-16 and 2026-03-01 as the
# values of this header (e.g. /api-reference/tts/websocket, /api-reference/voices/get). The SDK 4.x
# default (2026-08-14) is not among them, so it is pinned here and sent on the handshake and on HTTP.
CARTESIA_VERSION = "2026-03-01"
# Fields we send on the WebSocket (/api-reference/tts/websocket, /use-the-api/tts-websocket/contexts):
# context_id, model_id, transcript, voice, output_format, language, continue, max_buffer_delay_ms, flush
# (a flush after every piece marks where that piece's audio ends: /context-flushing-and-flush-i-ds);
# and {context_id, cancel} for barge-in. Nothing else.


def voice_specifier(voice_id: str) -> dict[str, str]:
    """The generation request's voice in the documented form (``{"mode": "id", "id": ...}``)."""
    return {"mode": "id", "id": voice_id}
_CARTESIA_ENCODING = {"mulaw": "pcm_mulaw", "alaw": "pcm_alaw", "linear16": "pcm_s16le"}
_SAMPLE_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
_WAKE = object()  # put into a context queue by cancel() to wake a waiting audio() iterator
_POLL_S = 0.5  # how often a waiting audio() re-checks the connection and its idle deadline


def kind_for_status(status: int | None, code: str | None = None) -> str:
    """Map an HTTP-style status (handshake or in-band ``status_code``) to a ProviderError kind."""
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limit"
    if status == 404:
        return "not_found"
    if status in (408, 504):
        return "timeout"
    if status is not None and status >= 500:
        return "server"
    if status is not None and 400 <= status < 500:
        return "bad_request"
    code = (code or "").lower()
    for needle, kind in (("auth", "auth"), ("rate", "rate_limit"), ("not_found", "not_found"),
                         ("sunset", "not_found"), ("timeout", "timeout")):
        if needle in code:
            return kind
    return "other"


def output_format(fmt: AudioFormat) -> dict[str, Any]:
    """The WebSocket's raw output format for ``fmt`` (Cartesia accepts only ``container: raw`` there)."""
    if fmt.encoding not in _CARTESIA_ENCODING:
        raise ValueError(f"Cartesia cannot produce encoding {fmt.encoding!r}")
    if fmt.sample_rate not in _SAMPLE_RATES:
        raise ValueError(f"Cartesia sample_rate must be one of {_SAMPLE_RATES}, not {fmt.sample_rate}")
    return {"container": "raw", "encoding": _CARTESIA_ENCODING[fmt.encoding], "sample_rate": fmt.sample_rate}


class CartesiaTTS(TTS):
    """A per-call Cartesia voice. Build one per call; ``aclose()`` it at hang-up."""

    name = "cartesia"

    def __init__(self, *, api_key: str, voice_id: str, model: str = "sonic-3",
                 base_url: str = "https://api.cartesia.ai", ws_url: str = "wss://api.cartesia.ai",
                 max_buffer_delay_ms: int = 200, language: str = "en", connect_timeout_s: float = 10.0,
                 idle_timeout_s: float = 15.0, synth_timeout_s: float = 30.0) -> None:
        if not api_key:
            raise ValueError("CartesiaTTS needs an API key (CARTESIA_API_KEY); use the offline voice without one")
        if not voice_id:
            raise ValueError("CartesiaTTS needs a voice_id")
        if not 0 <= max_buffer_delay_ms <= 5000:
            raise ValueError("max_buffer_delay_ms must be within 0..5000")
        self.voice_id = voice_id
        self.model = model
        self.base_url = base_url
        self.ws_url = ws_url
        self.max_buffer_delay_ms = max_buffer_delay_ms
        self.language = language
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s  # after finish(): longest wait for the next event
        self.synth_timeout_s = synth_timeout_s
        self.connections_opened = 0  # handshakes this object made (1 per call unless the socket dropped)
        self._api_key = api_key
        self._client: AsyncCartesia | None = None
        self._conn: Any = None  # cartesia.lib._tts.AsyncTTSResourceConnection
        self._lock = asyncio.Lock()
        self._live: weakref.WeakSet[CartesiaUtterance] = weakref.WeakSet()
        self._closed = False

    def __repr__(self) -> str:  # never show the key
        return f"CartesiaTTS(voice_id={self.voice_id!r}, model={self.model!r}, ws_url={self.ws_url!r})"

    async def connect(self) -> Any:
        """Open the call's WebSocket if it is not open (utterance() calls this; call it early to warm up)."""
        if self._closed:
            raise TTSError("Cartesia TTS is closed", kind="closed", provider=PROVIDER)
        async with self._lock:
            if self._conn is not None and _is_open(self._conn):
                return self._conn
            if self._conn is not None:  # the socket dropped: forget it, open a fresh one
                await _quiet_close(self._conn)
                self._conn = None
            if self._client is None:
                # lower-case key: it replaces the SDK's own "cartesia-version" instead of adding a second one
                # the process's pooled HTTP client: a client of its own would build a TLS context on
                # the event loop for every call (issue 18)
                self._client = AsyncCartesia(api_key=self._api_key, base_url=self.base_url,
                                             websocket_base_url=self.ws_url, max_retries=0,
                                             default_headers={"cartesia-version": CARTESIA_VERSION},
                                             http_client=netpool.http_client(PROVIDER, self.base_url))
            # wss: the shared TLS context (websockets would build one per connection); ws: no TLS at all
            options = {"ssl": netpool.ssl_context()} if netpool.is_secure(self.ws_url) else {}
            manager = self._client.tts.websocket_connect(websocket_connection_options=options)
            try:
                self._conn = await asyncio.wait_for(manager.enter(), self.connect_timeout_s)
            except InvalidStatus as exc:
                status = exc.response.status_code
                raise TTSError(f"Cartesia rejected the WebSocket handshake with HTTP {status}",
                               kind=kind_for_status(status), status=status, provider=PROVIDER) from None
            except TimeoutError:
                raise TTSError(f"Cartesia handshake timed out after {self.connect_timeout_s:g}s",
                               kind="timeout", provider=PROVIDER) from None
            except (OSError, InvalidHandshake, InvalidURI) as exc:
                raise TTSError(f"cannot connect to Cartesia at {self.ws_url}: {type(exc).__name__}: {exc}",
                               kind="connection", provider=PROVIDER) from None
            self.connections_opened += 1
            return self._conn

    async def utterance(self, fmt: AudioFormat) -> CartesiaUtterance:
        fmt_dict = output_format(fmt)
        conn = await self.connect()
        ctx = conn.context(model_id=self.model, voice=voice_specifier(self.voice_id), language=self.language,
                           output_format=fmt_dict, max_buffer_delay_ms=self.max_buffer_delay_ms)
        utt = CartesiaUtterance(conn, ctx, fmt, idle_timeout_s=self.idle_timeout_s)
        self._live.add(utt)
        return utt

    async def synthesize(self, text: str, fmt: AudioFormat) -> bytes:
        """Whole-text synthesis for previews on this object's WebSocket, bounded in time and size."""
        text = text.strip()
        if not text:
            raise ValueError("nothing to synthesize: empty text")
        if len(text) > 2000:
            raise ValueError("preview text is limited to 2000 characters")
        limit = fmt.bytes_per_second * 300  # 5 minutes of audio is far beyond any preview
        utt = await self.utterance(fmt)
        parts: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.synth_timeout_s):
                await utt.push(text)
                await utt.finish()
                async for chunk in utt.audio():
                    parts.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        raise TTSError("Cartesia returned more audio than the text can need",
                                       kind="other", provider=PROVIDER)
        except TimeoutError:
            raise TTSError(f"Cartesia synthesis took longer than {self.synth_timeout_s:g}s",
                           kind="timeout", provider=PROVIDER) from None
        finally:
            await utt.cancel()  # no-op when done; stops generation on timeout or error
        return b"".join(parts)

    async def aclose(self) -> None:
        """End every live utterance quietly and close the WebSocket and the HTTP client. Idempotent."""
        self._closed = True
        for utt in list(self._live):
            utt._stop()
        async with self._lock:
            if self._conn is not None:
                await _quiet_close(self._conn)
                self._conn = None
            if self._client is not None:
                if not netpool.is_pooled(getattr(self._client, "_client", None)):
                    await self._client.close()  # the pooled HTTP client outlives the call
                self._client = None


class CartesiaUtterance(TTSUtterance):
    """One Cartesia context: push pieces, finish, iterate audio, or cancel (barge-in).

    Every push is followed by a flush, so each ``flush_done`` marks the end of one piece's audio in
    the stream (``piece_ends``): a failover can then resume at the first piece not yet played."""

    marks_pieces = True

    def __init__(self, conn: Any, ctx: Any, fmt: AudioFormat, *, idle_timeout_s: float) -> None:
        self.fmt = fmt
        self.piece_ends = []
        self._yielded = 0
        self.requested_at = None
        self.first_audio_at = None
        self.finished_at: float | None = None
        self._conn = conn
        self._ctx = ctx
        # The SDK's reader routes this context's events into this queue; ours stamps the first chunk's
        # arrival, so TTFB does not depend on when the consumer gets round to iterating audio().
        self._queue = _ArrivalQueue(self)
        conn._context_queues[ctx._context_id] = self._queue
        self._idle_timeout_s = idle_timeout_s
        self._pushed = False
        self._finished = False
        self._cancelled = False
        self._done = False  # done/error received, or nothing to say
        self._last_event_at = time.monotonic()

    @property
    def context_id(self) -> str:
        return self._ctx._context_id

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    async def push(self, text: str) -> None:
        if self._cancelled or self._done:
            return  # after barge-in the LLM may still be draining; its text is not wanted
        if self._finished:
            raise RuntimeError("push() after finish() on the same utterance")
        if not text:
            return
        if self.requested_at is None:
            self.requested_at = time.monotonic()
        self._pushed = True
        await self._send(self._ctx.push(text))
        await self._send(self._ctx.push("", flush=True))  # {"transcript": "", "continue": true, "flush": true}

    async def finish(self) -> None:
        if self._finished or self._cancelled or self._done:
            return
        self._finished = True
        self.finished_at = self._last_event_at = time.monotonic()
        if not self._pushed:  # nothing to say: don't open an empty context on the server
            self._stop()
            return
        await self._send(self._ctx.no_more_inputs())

    async def cancel(self) -> None:
        if self._cancelled:
            return
        was_live = self._pushed and not self._done
        self._stop()
        if was_live:
            try:
                await self._ctx.cancel()  # {"context_id":..., "cancel": true}; the SDK drops later events
            except (WebSocketException, OSError) as exc:
                log.debug("Cartesia cancel not sent (%s); the context dies with the socket", type(exc).__name__)

    def _stop(self) -> None:
        """Mark cancelled, wake a waiting audio() and unregister the context queue (synchronous)."""
        self._cancelled = True
        self._queue.put_nowait(_WAKE)
        self._conn._context_queues.pop(self.context_id, None)

    async def _send(self, coro: Any) -> None:
        try:
            await coro
        except ConnectionClosed as exc:
            self._done = True
            raise TTSError(f"Cartesia WebSocket closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})",
                           kind="closed", provider=PROVIDER) from None
        except (WebSocketException, OSError) as exc:
            self._done = True
            raise TTSError(f"Cartesia send failed: {type(exc).__name__}", kind="connection",
                           provider=PROVIDER) from None

    async def audio(self) -> AsyncIterator[bytes]:
        while not (self._cancelled or self._done):
            event = await self._next_event()
            if self._cancelled:
                return
            if event is _WAKE:
                continue
            etype = getattr(event, "type", None)
            if etype == "chunk":
                data = event.audio
                if data:
                    if self.first_audio_at is None:  # normally already stamped on arrival
                        self.first_audio_at = time.monotonic()
                    self._yielded += len(data)
                    yield data
            elif etype == "flush_done":
                self.piece_ends.append(self._yielded)  # everything yielded so far belongs to earlier pieces
            elif etype == "done":
                self._finish_context()
                return
            elif etype == "error":
                self._finish_context()
                status = getattr(event, "status_code", None)
                code = getattr(event, "error_code", None)
                message = getattr(event, "message", None) or getattr(event, "title", None) or "error"
                raise TTSError(f"Cartesia error {status or ''} {code or ''}: {message}".replace("  ", " "),
                               kind=kind_for_status(status, code), status=status, provider=PROVIDER)

    def _finish_context(self) -> None:
        self._done = True
        self._conn._context_queues.pop(self.context_id, None)

    async def _next_event(self) -> Any:
        """The next routed event, or _WAKE; raises TTSError if the socket dies or goes quiet too long."""
        if not self._queue.empty():
            self._last_event_at = time.monotonic()
            return self._queue.get_nowait()
        getter = asyncio.ensure_future(self._queue.get())
        try:
            while True:
                reader = self._conn._processing_task
                waiters = {getter} if reader is None else {getter, reader}
                done, _ = await asyncio.wait(waiters, timeout=_POLL_S, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    self._last_event_at = time.monotonic()
                    return getter.result()
                if self._cancelled:
                    return _WAKE
                if not self._queue.empty():
                    continue  # routed before the socket died: deliver it first
                if (reader is not None and reader.done()) or not _is_open(self._conn):
                    self._done = True
                    raise TTSError("Cartesia WebSocket closed during the utterance", kind="closed",
                                   provider=PROVIDER)
                if self._finished and time.monotonic() - self._last_event_at > self._idle_timeout_s:
                    self._done = True
                    raise TTSError(f"no audio from Cartesia for {self._idle_timeout_s:g}s", kind="timeout",
                                   provider=PROVIDER)
        finally:
            if not getter.done():
                getter.cancel()


class _ArrivalQueue(asyncio.Queue):
    """A context queue that records when the utterance's first audio chunk arrived off the socket."""

    def __init__(self, utt: CartesiaUtterance) -> None:
        super().__init__()
        self._utt = weakref.ref(utt)

    def put_nowait(self, item: Any) -> None:
        utt = self._utt()
        if utt is not None and utt.first_audio_at is None and getattr(item, "type", None) == "chunk":
            utt.first_audio_at = time.monotonic()
        super().put_nowait(item)


def _is_open(conn: Any) -> bool:
    return conn._connection.state is State.OPEN


async def _quiet_close(conn: Any) -> None:
    try:
        await conn.close()
    except (WebSocketException, OSError) as exc:
        log.debug("Cartesia close: %s", type(exc).__name__)
