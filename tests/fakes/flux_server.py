"""A local fake of Deepgram Flux (/v2/listen) speaking its documented wire protocol.

Turns are driven by the AUDIO clock (bytes received -> seconds), like the real service:
- scripted: ``utterances=[(start_s, end_s, "transcript"), ...]``
- energy: speech detected from the audio itself (mu-law/A-law/linear16), with ``transcript`` per turn
EndOfTurn comes ``eot_delay_ms`` of real time after the audio containing the speech end arrived.
Error injection: ``handshake_status`` (e.g. 401), ``error_after_s`` (a Flux ``Error``),
``close_after_s`` (abrupt close, once). Records query params, headers, bytes, control messages.
Usable from pytest and from plain asyncio programs (benchmarks).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

import numpy as np
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from telephony.codecs import g711


@dataclass
class FluxConnection:
    query: dict
    headers: dict
    bytes_received: int = 0
    frames: list[int] = field(default_factory=list)  # sizes of binary frames
    controls: list[dict] = field(default_factory=list)
    sent: list[dict] = field(default_factory=list)
    closed_by_client: bool = False


class FakeFluxServer:
    def __init__(self, *, utterances: list[tuple[float, float, str]] | None = None, energy: bool = False,
                 transcript: str | list[str] = "hello there", eot_delay_ms: float = 250,
                 eager_lead_ms: float | None = None,
                 resume: bool = False, handshake_status: int | None = None, api_key: str | None = None,
                 error_after_s: float | None = None, close_after_s: float | None = None,
                 update_every_s: float = 0.25, min_silence_s: float = 0.35, energy_threshold: float = 500.0) -> None:
        self.utterances = utterances or []
        self.energy = energy
        self.transcripts = [transcript] if isinstance(transcript, str) else list(transcript)
        self.eot_delay = eot_delay_ms / 1000
        self.eager_lead = None if eager_lead_ms is None else eager_lead_ms / 1000
        self.resume = resume
        self.handshake_status = handshake_status
        self.api_key = api_key
        self.error_after_s = error_after_s
        self.close_after_s = close_after_s
        self.update_every = update_every_s
        self.min_silence = min_silence_s
        self.energy_threshold = energy_threshold
        self.connections: list[FluxConnection] = []
        self._server = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v2/listen"

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
        if status is None and self.api_key is not None:
            if request.headers.get("Authorization") != f"Token {self.api_key}":
                status = 401
        if status is not None:
            body = b"Websocket initialized with invalid credentials." if status == 401 else b"error"
            return Response(status, "Refused", Headers([("Content-Length", str(len(body)))]), body)
        return None

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes_received for c in self.connections)

    async def _handler(self, ws) -> None:
        req = ws.request
        q = {k: v[0] for k, v in parse_qs(urlparse(req.path).query).items()}
        conn = FluxConnection(q, dict(req.headers.raw_items()))
        self.connections.append(conn)
        enc, rate = q.get("encoding", "linear16"), int(q.get("sample_rate", "16000"))
        bps = rate * (2 if enc == "linear16" else 1)
        seq = 0
        pending: list[tuple[float, dict]] = []  # (monotonic due, message)

        async def send(msg: dict) -> None:
            nonlocal seq
            msg["sequence_id"] = seq
            seq += 1
            conn.sent.append(msg)
            await ws.send(json.dumps(msg))

        await send({"type": "Connected", "request_id": str(uuid.uuid4())})
        turn = {"index": 0, "active": False, "start": 0.0, "last_speech": 0.0, "last_update": 0.0,
                "script_i": 0, "eager_sent": False}
        eager_on = "eager_eot_threshold" in q
        first_conn = len(self.connections) == 1

        def info(event: str, t0: float, t1: float, text: str, **extra) -> dict:
            words = text.split()
            span = max(t1 - t0, 0.01)
            ws_ = [{"word": w, "confidence": 0.95, "start": round(t0 + span * i / len(words), 3),
                    "end": round(t0 + span * (i + 1) / len(words), 3)} for i, w in enumerate(words)]
            return {"type": "TurnInfo", "event": event, "turn_index": turn["index"], "audio_window_start": t0,
                    "audio_window_end": t1, "transcript": text, "words": ws_ if event != "StartOfTurn" else [],
                    "end_of_turn_confidence": 0.9 if "End" in event else 0.1, **extra}

        def text_for(i: int) -> str:
            return self.transcripts[min(i, len(self.transcripts) - 1)] if self.transcripts else ""

        async def flush_due() -> None:
            now = time.monotonic()
            for item in [p for p in pending if p[0] <= now]:
                pending.remove(item)
                await send(item[1])
                if item[1].get("event") == "EndOfTurn":
                    turn["index"] += 1

        async def ticker() -> None:
            while True:
                await asyncio.sleep(0.01)
                await flush_due()

        tick = asyncio.create_task(ticker())
        try:
            async for data in ws:
                if isinstance(data, str):
                    msg = json.loads(data)
                    conn.controls.append(msg)
                    if msg.get("type") == "CloseStream":
                        conn.closed_by_client = True
                        while pending:
                            await asyncio.sleep(0.01)
                        await ws.close()
                        return
                    if msg.get("type") == "Configure":
                        await send({"type": "ConfigureSuccess", "request_id": "x",
                                    "thresholds": msg.get("thresholds", {})})
                    continue
                prev_t = conn.bytes_received / bps
                conn.bytes_received += len(data)
                conn.frames.append(len(data))
                t = conn.bytes_received / bps
                if self.error_after_s is not None and t >= self.error_after_s:
                    await send({"type": "Error", "code": "INTERNAL", "description": "injected failure"})
                    await ws.close()
                    return
                if self.close_after_s is not None and first_conn and t >= self.close_after_s:
                    await ws.close(1011, "injected close")
                    return
                if self.energy:
                    await self._energy_step(data, enc, prev_t, t, turn, pending, send, info, text_for, eager_on)
                else:
                    await self._script_step(t, turn, pending, send, info, eager_on)
                await flush_due()
        finally:
            tick.cancel()

    async def _script_step(self, t, turn, pending, send, info, eager_on) -> None:
        if turn["script_i"] >= len(self.utterances):
            return
        start, end, text = self.utterances[turn["script_i"]]
        if not turn["active"] and t >= start:
            turn["active"] = True
            turn["last_update"] = start
            await send(info("StartOfTurn", start, t, ""))
        if turn["active"] and t < end and t - turn["last_update"] >= self.update_every:
            turn["last_update"] = t
            n = max(1, int(len(text.split()) * (t - start) / max(end - start, 0.01)))
            await send(info("Update", start, t, " ".join(text.split()[:n])))
        if turn["active"] and t >= end:
            turn["active"] = False
            turn["script_i"] += 1
            self._schedule_end(pending, info, start, end, text, eager_on)

    def _schedule_end(self, pending, info, start, end, text, eager_on) -> None:
        now = time.monotonic()
        eot_at = now + self.eot_delay
        if eager_on and self.eager_lead is not None:
            pending.append((max(now, eot_at - self.eager_lead), info("EagerEndOfTurn", start, end, text)))
            if self.resume:
                pending.append((max(now, eot_at - self.eager_lead / 2), info("TurnResumed", start, end, text)))
        pending.append((eot_at, info("EndOfTurn", start, end, text, trigger="model")))

    async def _energy_step(self, data, enc, prev_t, t, turn, pending, send, info, text_for, eager_on) -> None:
        if enc == "mulaw":
            pcm = g711.ulaw_decode(data)
        elif enc == "alaw":
            pcm = g711.alaw_decode(data)
        else:
            pcm = np.frombuffer(data, dtype="<i2")
        loud = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > self.energy_threshold if len(pcm) else False
        if loud:
            if not turn["active"]:
                turn["active"] = True
                turn["start"] = prev_t
                turn["last_update"] = t
                await send(info("StartOfTurn", prev_t, t, ""))
            turn["last_speech"] = t
        if turn["active"]:
            if loud and t - turn["last_update"] >= self.update_every:
                turn["last_update"] = t
                await send(info("Update", turn["start"], t, text_for(turn["index"])))
            if not loud and t - turn["last_speech"] >= self.min_silence:
                turn["active"] = False
                self._schedule_end(pending, info, turn["start"], turn["last_speech"], text_for(turn["index"]),
                                   eager_on)
