"""One Flux stream for one call: the connection, the audio sender, the event receiver and
reconnects with replay (the why of each is in ``aioptions.providers.flux``'s docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from aioptions.codecs.g711 import LOUD

from . import netpool
from .base import CLOSED, AudioFormat, STTError, STTSession, TurnEvent, queued_events
from .flux_wire import CLOSE_STREAM, configure_message, kind_for_status, listen_url, turn_event

if TYPE_CHECKING:
    from .flux import FluxSTT

log = logging.getLogger("aioptions.providers.flux")  # one logger name for the Flux client
USER_AGENT = "TalkyAI-VoiceAgent/1.0"
FRAME_MS = 80


class _Dropped(Exception):
    """The connection closed without our CloseStream: reconnect."""


class _FluxError(_Dropped):
    """Flux sent ``Error``: the connection is over, the session need not be."""


class FluxSession(STTSession):
    """One Flux stream for one call; survives connection drops (see the module docstring)."""

    def __init__(self, stt: FluxSTT, fmt: AudioFormat, params: dict) -> None:
        self.stt = stt
        self.fmt = fmt
        self.params = params
        self.bps = fmt.bytes_per_second
        self.chunk_bytes = self.bps * FRAME_MS // 1000
        self._pending = bytearray()  # accepted by send(), not shipped yet
        self._pending_pos = 0  # call-clock byte position of _pending[0]
        self._history = bytearray()  # the last replay_s of shipped audio, ends at _pending_pos
        self._max_history = int(stt.replay_s * self.bps)
        self._max_pending = int(stt.max_backlog_s * self.bps)
        self._turn_end_pos = 0  # call-clock byte position where the last EndOfTurn's window ended
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()  # close() was called
        self._events: asyncio.Queue = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._closing = False
        self._closed = False
        self._dead = False  # a fatal error ended the session: audio is dropped
        self._task: asyncio.Task | None = None
        self._conn_base_s = 0.0  # call-clock seconds of the current connection's first byte
        self._turn_base = 0  # call-level turn index of the current connection's turn 0
        self._turns_done = 0  # EndOfTurns seen on the call so far
        self.accepted_bytes = 0  # everything passed to send(): the call's audio clock
        self.sent_bytes = 0  # audio shipped at least once
        self.wire_bytes = 0  # audio bytes written to sockets, replays included
        self.dropped_bytes = 0  # backlog dropped while disconnected for too long
        self.reconnects = 0
        self.connection_offsets: list[float] = []  # call-clock seconds where each connection's 0 lies
        self.request_id: str | None = None
        self.thresholds: dict = {}  # as last confirmed by ConfigureSuccess
        self.configure_error: str | None = None
        self.configures_acked = 0
        self.errors = 0  # Flux Error messages received
        self._faults: list[str] = []  # what went wrong and how it was handled, for the Turn row
        # end-of-speech fast path (G.711 only): a loud-sample table, where speech was last heard, and
        # how long after it silent frames are shipped at once (the window Flux decides the turn in)
        self._vad = LOUD.get({"mulaw": "PCMU", "alaw": "PCMA"}.get(fmt.encoding, ""))
        self._speech_at = -1
        self._tail_bytes = int(stt.flush_tail_s * self.bps)
        self._flush = False

    @property
    def audio_seconds(self) -> float:  # type: ignore[override]
        """Seconds of audio passed to ``send()`` so far (the call's audio clock)."""
        return self.accepted_bytes / self.bps

    async def start(self) -> None:
        await self._connect(replay_from=0)
        self._task = asyncio.create_task(self._run(), name="flux-session")

    # --- connection --------------------------------------------------------------------------
    def _url(self) -> str:
        return listen_url(self.stt.url, self.stt.model, self.fmt, self.params)

    def take_faults(self) -> list[str]:
        faults, self._faults = self._faults, []
        return faults

    def unsent_audio(self) -> bytes:
        """The audio of the turn in progress (bounded by replay_s) plus what was never shipped:
        what a fallback recogniser should hear first when this session has given up."""
        start = self._replay_from()
        hist_start = self._pending_pos - len(self._history)
        return bytes(self._history[start - hist_start :]) + bytes(self._pending)

    async def _connect(self, replay_from: int) -> None:
        try:
            url = self._url()
            self._ws = await connect(
                url,
                ssl=netpool.ssl_for(url),  # the process's one TLS context (wss only), not one per connect
                additional_headers={"Authorization": f"Token {self.stt.api_key}"},
                user_agent_header=USER_AGENT,
                open_timeout=self.stt.connect_timeout,
                # no permessage-deflate: G.711 speech compresses little, and zlib (~20 us) on every frame of
                # every call ran on the event loop (3 % of the loop's stall samples at 100 calls, issue 18)
                compression=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise STTError(
                f"Deepgram refused the connection: HTTP {status}",
                kind=kind_for_status(status),
                status=status,
                provider="deepgram",
            ) from None
        except InvalidURI:
            raise STTError(
                f"invalid Deepgram URL {self.stt.url!r}", kind="bad_request", provider="deepgram"
            ) from None
        except (TimeoutError, OSError, InvalidHandshake) as exc:
            raise STTError(
                f"cannot reach Deepgram at {self.stt.url}: {type(exc).__name__}: {exc}",
                kind="connection",
                provider="deepgram",
            ) from None
        self._conn_base_s = replay_from / self.bps
        self._turn_base = self._turns_done
        self.connection_offsets.append(self._conn_base_s)

    def _replay_from(self) -> int:
        """Call-clock byte position to resend from after a drop: the turn in progress, bounded."""
        hist_start = self._pending_pos - len(self._history)
        return max(hist_start, min(self._turn_end_pos, self._pending_pos))

    async def _run(self) -> None:
        attempts = 0
        replay = b""
        while True:
            connected_at = time.monotonic()
            sender = asyncio.create_task(self._sender(self._ws, replay), name="flux-sender")
            try:
                await self._receiver(self._ws)
                return  # closed after our CloseStream
            except STTError as exc:
                await self._fail(exc)
                return
            except _FluxError as exc:
                if self._closing:
                    return
                self.errors += 1
                if self.errors > self.stt.max_errors:
                    log.warning("Flux sent Error %d times; giving up on this session", self.errors)
                    await self._fail(STTError(str(exc), kind="server", provider="deepgram"))
                    return
                self._faults.append(f"stt deepgram: {exc}; reconnected with replay")
                log.warning("%s; reconnecting and replaying the turn in progress", exc)
            except _Dropped as exc:
                if self._closing:
                    return
                self._faults.append(f"stt deepgram: connection dropped ({exc}); reconnected with replay")
                log.warning("Flux connection closed unexpectedly (%s); reconnecting", exc)
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
            if time.monotonic() - connected_at > 5.0:
                attempts = 0  # a connection that lived is not a failed attempt
            while True:
                attempts += 1
                if attempts > self.stt.max_reconnects:
                    await self._fail(
                        STTError(
                            "Flux connection lost and reconnecting failed", kind="closed", provider="deepgram"
                        )
                    )
                    return
                with contextlib.suppress(TimeoutError):  # backoff, cut short by close()
                    await asyncio.wait_for(self._stop.wait(), min(0.1 * 2 ** (attempts - 1), 2.0))
                if self._closing:
                    return
                start = self._replay_from()
                try:
                    await self._connect(replay_from=start)
                except STTError as exc:
                    if exc.kind == "auth":
                        await self._fail(exc)
                        return
                    log.warning("Flux reconnect %d failed: %s", attempts, exc)
                    continue
                self.reconnects += 1
                hist_start = self._pending_pos - len(self._history)
                replay = bytes(self._history[start - hist_start :])
                break

    async def _fail(self, exc: STTError) -> None:
        self._dead = True  # send() drops audio from now on; unsent_audio() keeps the turn in progress
        await self._events.put(exc)

    async def _sender(self, ws: ClientConnection, replay: bytes) -> None:
        n = self.chunk_bytes
        for i in range(0, len(replay), n):
            await ws.send(replay[i : i + n])
            self.wire_bytes += len(replay[i : i + n])
        while True:
            if len(self._pending) < n and not self._closing and not self._flush:
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self._pending:
                if self._closing:  # closing and everything shipped
                    await ws.send(CLOSE_STREAM)
                    return
                self._flush = False
                continue
            if len(self._pending) <= n:
                self._flush = False
            chunk = bytes(self._pending[:n])
            await ws.send(chunk)
            del self._pending[: len(chunk)]  # dropped only once handed to the socket
            self._pending_pos += len(chunk)
            self._history += chunk
            if len(self._history) > self._max_history:
                del self._history[: len(self._history) - self._max_history]
            self.sent_bytes += len(chunk)
            self.wire_bytes += len(chunk)

    async def _receiver(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                if isinstance(raw, str):
                    await self._handle(raw)
        except ConnectionClosed as exc:
            if not self._closing:
                raise _Dropped(f"code {exc.rcvd.code if exc.rcvd else 'none'}") from None
            return
        if not self._closing:
            raise _Dropped("closed by the server")

    async def _handle(self, raw: str) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            log.warning("Flux sent a non-JSON text frame")
            return
        kind = msg.get("type")
        if kind == "TurnInfo":
            ev = turn_event(msg, self._conn_base_s, self._turn_base)
            if ev.kind == "EndOfTurn":
                self._turns_done = ev.turn_index + 1
                self._turn_end_pos = max(self._turn_end_pos, round(ev.audio_window_end * self.bps))
            await self._events.put(ev)
        elif kind == "Connected":
            self.request_id = msg.get("request_id")
        elif kind == "Error":
            raise _FluxError(f"Flux error {msg.get('code')}: {msg.get('description')}")
        elif kind == "ConfigureSuccess":
            self.thresholds = dict(msg.get("thresholds") or {})
            self.configure_error = None
            self.configures_acked += 1
            log.info("Flux applied Configure: thresholds %s, %d keyterms", self.thresholds,
                     len(msg.get("keyterms") or ()))
        elif kind == "ConfigureFailure":
            self.configure_error = str(msg.get("description") or msg.get("code") or "rejected")
            log.warning("Flux rejected Configure: %s", self.configure_error)
        elif kind == "Warning":
            log.warning("Flux warning %s: %s", msg.get("code"), msg.get("description"))

    # --- STTSession --------------------------------------------------------------------------
    async def send(self, audio: bytes) -> None:
        """Queue audio (never waits). While disconnected the backlog is capped at ``max_backlog_s``:
        the oldest audio goes first, and the clock still counts it, so later times stay true."""
        if self._closing or self._dead:
            return
        self.accepted_bytes += len(audio)
        self._pending += audio
        over = len(self._pending) - self._max_pending
        if over > 0:
            del self._pending[:over]
            self._pending_pos += over
            self.dropped_bytes += over
            self._history.clear()  # no longer contiguous with what is pending: nothing to replay
        if self._vad is not None:
            # end-of-speech fast path: speech was heard recently and this frame is silent, so Flux
            # gets what is pending now instead of waiting up to 60 ms for an 80 ms chunk to fill
            # (its end-of-turn clock runs on audio it has received)
            if 1 in audio.translate(self._vad):
                self._speech_at = self.accepted_bytes
            elif self._speech_at >= 0 and self.accepted_bytes - self._speech_at <= self._tail_bytes:
                self._flush = True
        if len(self._pending) >= self.chunk_bytes or (self._flush and self._pending):
            self._wake.set()

    def events(self) -> AsyncIterator[TurnEvent]:
        return queued_events(self._events)

    async def configure(
        self,
        *,
        eot_threshold: float | None = None,
        eager_eot_threshold: float | None = None,
        eot_timeout_ms: int | None = None,
        keyterms: list[str] | None = None,
    ) -> None:
        """Send ``Configure`` now (thresholds omitted keep their value; ``keyterms`` replaces the
        list); the values also go into the URL of any later reconnect. Returns before Flux answers:
        the answer is logged and counted (``configures_acked``/``configure_error``)."""
        thresholds = {
            k: v
            for k, v in (
                ("eot_threshold", eot_threshold),
                ("eager_eot_threshold", eager_eot_threshold),
                ("eot_timeout_ms", eot_timeout_ms),
            )
            if v is not None
        }
        message = configure_message(thresholds, keyterms)
        if message is None:
            return
        self.params.update(thresholds)
        if keyterms is not None:
            self.params["keyterm"] = list(keyterms)
        if self._ws is not None and not self._closing and not self._dead:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(json.dumps(message))

    async def close(self, timeout: float = 2.0) -> None:
        """Ship what is buffered, send ``CloseStream``, give Flux ``timeout`` s to finish, then close."""
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except (TimeoutError, Exception):  # noqa: BLE001 - closing must not raise
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        await self._events.put(CLOSED)
