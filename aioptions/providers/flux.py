"""Deepgram Flux streaming STT over the ``websockets`` library (wss://api.deepgram.com/v2/listen).

Why it is built this way:
- ``send()`` only appends to a buffer and returns; a sender task ships ~80 ms binary frames
  (Deepgram's recommendation) so neither the RTP path nor the event receiver ever waits on the network.
- One call = one audio clock: the position of a byte is its offset in everything passed to ``send()``.
  Flux's ``audio_window_*`` and word times count from 0 on each connection, so every connection
  remembers where its first byte sits on the call clock and events are shifted by that.
- On an unexpected close the session reconnects (bounded, with backoff). Audio not yet shipped is
  kept, and the audio of the turn in progress (since the last ``EndOfTurn``, at most ``replay_s``) is
  sent again first, so speech cut by the drop is still recognised and no finished turn is repeated.
  ``turn_index`` continues across connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from .base import CLOSED, STT, AudioFormat, STTError, STTSession, TurnEvent, Word, queued_events

log = logging.getLogger(__name__)
USER_AGENT = "TalkyAI-VoiceAgent/1.0"
FRAME_MS = 80


def _kind_for_status(status: int) -> str:
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limit"
    return "server" if status >= 500 else "bad_request"


class _Dropped(Exception):
    """The connection closed without our CloseStream: reconnect."""


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

    @property
    def audio_seconds(self) -> float:  # type: ignore[override]
        """Seconds of audio passed to ``send()`` so far (the call's audio clock)."""
        return self.accepted_bytes / self.bps

    async def start(self) -> None:
        await self._connect(replay_from=0)
        self._task = asyncio.create_task(self._run(), name="flux-session")

    # --- connection --------------------------------------------------------------------------
    def _url(self) -> str:
        query = {"model": self.stt.model, "encoding": self.fmt.encoding, "sample_rate": self.fmt.sample_rate}
        query.update({k: v for k, v in self.params.items() if v is not None})
        return f"{self.stt.url}?{urlencode(query)}"

    async def _connect(self, replay_from: int) -> None:
        try:
            self._ws = await connect(
                self._url(),
                additional_headers={"Authorization": f"Token {self.stt.api_key}"},
                user_agent_header=USER_AGENT,
                open_timeout=self.stt.connect_timeout,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise STTError(
                f"Deepgram refused the connection: HTTP {status}",
                kind=_kind_for_status(status),
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
            except _Dropped as exc:
                if self._closing:
                    return
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
        self._dead = True
        self._pending.clear()
        await self._events.put(exc)

    async def _sender(self, ws: ClientConnection, replay: bytes) -> None:
        n = self.chunk_bytes
        for i in range(0, len(replay), n):
            await ws.send(replay[i : i + n])
            self.wire_bytes += len(replay[i : i + n])
        while True:
            if len(self._pending) < n and not self._closing:
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self._pending:  # closing and everything shipped
                await ws.send(json.dumps({"type": "CloseStream"}))
                return
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
            ev = self._turn_event(msg)
            if ev.kind == "EndOfTurn":
                self._turns_done = ev.turn_index + 1
                self._turn_end_pos = max(self._turn_end_pos, round(ev.audio_window_end * self.bps))
            await self._events.put(ev)
        elif kind == "Connected":
            self.request_id = msg.get("request_id")
        elif kind == "Error":
            raise STTError(
                f"Flux error {msg.get('code')}: {msg.get('description')}", kind="server", provider="deepgram"
            )
        elif kind == "ConfigureSuccess":
            self.thresholds = dict(msg.get("thresholds") or {})
            self.configure_error = None
        elif kind == "ConfigureFailure":
            self.configure_error = str(msg.get("description") or msg.get("code") or "rejected")
            log.warning("Flux rejected Configure: %s", self.configure_error)
        elif kind == "Warning":
            log.warning("Flux warning %s: %s", msg.get("code"), msg.get("description"))

    def _turn_event(self, msg: dict) -> TurnEvent:
        off = self._conn_base_s

        def shift(v) -> float | None:
            return None if v is None else float(v) + off

        words = tuple(
            Word(str(w.get("word", "")), shift(w.get("start")), shift(w.get("end")), w.get("confidence"))
            for w in msg.get("words") or []
        )
        return TurnEvent(
            kind=msg.get("event", "Update"),
            turn_index=int(msg.get("turn_index") or 0) + self._turn_base,
            transcript=msg.get("transcript") or "",
            words=words,
            audio_window_start=float(msg.get("audio_window_start") or 0) + off,
            audio_window_end=float(msg.get("audio_window_end") or 0) + off,
            end_of_turn_confidence=float(msg.get("end_of_turn_confidence") or 0),
            trigger=msg.get("trigger"),
            received_at=time.monotonic(),
        )

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
        if len(self._pending) >= self.chunk_bytes:
            self._wake.set()

    def events(self) -> AsyncIterator[TurnEvent]:
        return queued_events(self._events)

    async def configure(
        self,
        *,
        eot_threshold: float | None = None,
        eager_eot_threshold: float | None = None,
        eot_timeout_ms: int | None = None,
    ) -> None:
        """Send ``Configure``; the values also go into the URL of any later reconnect."""
        thresholds = {
            k: v
            for k, v in (
                ("eot_threshold", eot_threshold),
                ("eager_eot_threshold", eager_eot_threshold),
                ("eot_timeout_ms", eot_timeout_ms),
            )
            if v is not None
        }
        if not thresholds:
            return
        self.params.update(thresholds)
        if self._ws is not None and not self._closing:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(json.dumps({"type": "Configure", "thresholds": thresholds}))

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


class FluxSTT(STT):
    """Factory for Flux sessions; one instance may open many sessions (one per call)."""

    name = "deepgram"

    def __init__(
        self,
        *,
        api_key: str,
        url: str = "wss://api.deepgram.com/v2/listen",
        model: str = "flux-general-en",
        max_reconnects: int = 5,
        connect_timeout: float = 10.0,
        replay_s: float = 2.0,
        max_backlog_s: float = 30.0,
    ) -> None:
        if not api_key:
            raise STTError("DEEPGRAM_API_KEY is not set", kind="auth", provider="deepgram")
        self.api_key = api_key
        self.url = url
        self.model = model
        self.max_reconnects = max_reconnects
        self.connect_timeout = connect_timeout
        self.replay_s = replay_s
        self.max_backlog_s = max_backlog_s

    def __repr__(self) -> str:  # never the key
        return f"FluxSTT(url={self.url!r}, model={self.model!r})"

    async def open(
        self,
        fmt: AudioFormat,
        *,
        eot_threshold: float = 0.7,
        eager_eot_threshold: float | None = None,
        eot_timeout_ms: int = 5000,
    ) -> FluxSession:
        """Connect (raises STTError at once on 401/unreachable) and return a running session."""
        params = {
            "eot_threshold": eot_threshold,
            "eager_eot_threshold": eager_eot_threshold,
            "eot_timeout_ms": eot_timeout_ms,
        }
        session = FluxSession(self, fmt, params)
        await session.start()
        return session
