"""A local fake of Deepgram Flux (/v2/listen) speaking its documented wire protocol.

Turns are driven by the AUDIO clock of each connection (bytes received -> seconds), like the real
service, whose times restart at 0 on every connection. Three ways to script it:
- ``utterances=[(start_s, end_s, "transcript"), ...]``: StartOfTurn at start, Update every
  ``update_every_s`` of audio, optional EagerEndOfTurn (``eager_lead_ms``, needs the client to set
  ``eager_eot_threshold``) and TurnResumed (``resume``), EndOfTurn (trigger "model") ``eot_delay_ms``
  of real time after the audio holding the speech end arrived.
- ``script=[(audio_s, {message}), ...]``: raw messages sent when the audio clock reaches audio_s.
  ``{"event": "Update", ...}`` is completed into a TurnInfo; any other ``type`` is sent as given.
- ``energy=True``: turns from the audio itself (mu-law/A-law/linear16 RMS), so a real softphone
  playing a WAV produces turns; transcript per turn from ``transcript`` (str or list, last repeated).
  EndOfTurn comes ``min_silence_s`` of audio silence plus ``eot_delay_ms`` after the speech.
Error injection: ``handshake_status`` (e.g. 401) or ``api_key`` (401 on mismatch), ``error_after_s``
(a Flux ``Error`` then close 1011; on the first ``error_connections`` connections, default all),
``close_after_s`` (abrupt close of the first ``close_connections`` connections), ``reconnect_status``
(after an injected error or close, refuse every later handshake with this HTTP status: Flux stays
down), ``configure_fail``. ``connect_delay_ms`` delays ``Connected``.
``Configure`` is checked as documented (/docs/flux/configuration: eot_threshold 0.5-1.0,
eager_eot_threshold 0.3-0.9 and <= eot_threshold, eot_timeout_ms 500-60000; keyterms replace the
list): ``ConfigureFailure`` otherwise. A valid eager_eot_threshold turns eager events on.
Everything the client sent is recorded per connection (``connections``). Works from pytest and from
plain asyncio programs (benchmarks): ``async with FakeFluxServer(...) as srv: srv.url``.
This file holds the options, the handshake and the accept loop; flux_conn.py answers each connection.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from urllib.parse import parse_qs, urlparse

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from .flux_conn import ConnHandler, FluxConnection


class FakeFluxServer:
    def __init__(
        self,
        *,
        utterances: list[tuple[float, float, str]] | None = None,
        script: list[tuple[float, dict]] | None = None,
        energy: bool = False,
        transcript: str | list[str] = "hello there",
        eot_delay_ms: float = 250,
        eager_lead_ms: float | None = None,
        resume: bool = False,
        update_every_s: float = 0.25,
        min_silence_s: float = 0.35,
        energy_threshold: float = 500.0,
        handshake_status: int | None = None,
        api_key: str | None = None,
        error_after_s: float | None = None,
        error_connections: int | None = None,
        reconnect_status: int | None = None,
        close_after_s: float | None = None,
        close_connections: int = 1,
        configure_fail: bool = False,
        connect_delay_ms: float = 0,
        record_audio: bool = False,
    ) -> None:
        self.utterances = sorted(utterances or [])
        self.script = sorted(script or [], key=lambda item: item[0])
        self.energy = energy
        self.transcripts = [transcript] if isinstance(transcript, str) else list(transcript)
        self.eot_delay = eot_delay_ms / 1000
        self.eager_lead = None if eager_lead_ms is None else eager_lead_ms / 1000
        self.resume = resume
        self.update_every = update_every_s
        self.min_silence = min_silence_s
        self.energy_threshold = energy_threshold
        self.handshake_status = handshake_status
        self.api_key = api_key
        self.error_after_s = error_after_s
        self.error_connections = error_connections
        self.reconnect_status = reconnect_status
        self.injected_at: list[float] = []  # when injected errors/closes happened
        self.close_after_s = close_after_s
        self.close_connections = close_connections
        self.configure_fail = configure_fail
        self.connect_delay = connect_delay_ms / 1000
        self.record_audio = record_audio
        self.connections: list[FluxConnection] = []
        self.rejected: list[dict] = []  # handshakes answered with an HTTP error (headers)
        self._server = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v2/listen"

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes_received for c in self.connections)

    def transcript_for(self, turn: int) -> str:
        return self.transcripts[min(turn, len(self.transcripts) - 1)] if self.transcripts else ""

    async def start(self) -> FakeFluxServer:
        self._server = await serve(self._handler, "127.0.0.1", 0, process_request=self._check)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> FakeFluxServer:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def _check(self, connection, request):
        status = self.handshake_status
        if status is None and self.injected_at and self.reconnect_status is not None:
            status = self.reconnect_status
        if status is None and self.api_key is not None:
            if request.headers.get("Authorization") != f"Token {self.api_key}":
                status = 401
        if status is None:
            return None
        self.rejected.append(dict(request.headers.raw_items()))
        body = b"Websocket initialized with invalid credentials." if status == 401 else b"error"
        return Response(status, "Refused", Headers([("Content-Length", str(len(body)))]), body)

    async def _handler(self, ws) -> None:
        req = ws.request
        raw = parse_qs(urlparse(req.path).query)
        q = {k: v[0] for k, v in raw.items()}
        rec = FluxConnection(
            q,
            dict(req.headers.raw_items()),
            audio=bytearray() if self.record_audio else None,
            opened_at=time.monotonic(),
            keyterms=raw.get("keyterm", []),
        )
        self.connections.append(rec)
        conn = ConnHandler(self, ws, rec, len(self.connections) - 1)
        if self.connect_delay:
            await asyncio.sleep(self.connect_delay)
        try:
            await conn.send({"type": "Connected", "request_id": str(uuid.uuid4())})
            async for data in ws:
                if isinstance(data, str):
                    msg = json.loads(data)
                    rec.controls.append(msg)
                    rec.control_times.append(time.monotonic())
                    done = await conn.on_control(msg)
                else:
                    done = await conn.on_audio(data)
                if done:
                    return
        except ConnectionClosed:
            pass
        finally:
            for task in list(conn.later):
                task.cancel()
