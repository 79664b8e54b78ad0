"""One client connection of the fake Deepgram Flux server (see flux_server.py for the scripting options).

Why a file of its own: flux_server.py holds the options, the handshake and the accept loop; this file holds
what happens on one connection: its record (``FluxConnection``, what tests assert on) and the protocol
machine that answers it (audio clock, turn events, ``Configure``, injected failures).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from websockets.exceptions import ConnectionClosed

from aioptions.codecs import g711

if TYPE_CHECKING:
    from .flux_server import FakeFluxServer


@dataclass
class FluxConnection:
    """What one client connection sent and received."""

    query: dict
    headers: dict
    bytes_received: int = 0
    frames: list[int] = field(default_factory=list)  # sizes of binary frames, in order
    audio: bytearray | None = None  # every audio byte, when the server has record_audio=True
    controls: list[dict] = field(default_factory=list)  # JSON messages from the client
    control_times: list[float] = field(default_factory=list)  # monotonic arrival of each control
    sent: list[dict] = field(default_factory=list)  # JSON messages to the client
    closed_by_client: bool = False  # CloseStream received
    opened_at: float = 0.0
    keyterms: list[str] = field(default_factory=list)  # every keyterm= of the URL (repeatable)

    @property
    def configures(self) -> list[dict]:
        return [c for c in self.controls if c.get("type") == "Configure"]

    def events(self, kind: str | None = None) -> list[dict]:
        return [m for m in self.sent if m.get("type") == "TurnInfo" and (kind is None or m["event"] == kind)]


class ConnHandler:
    """Per-connection protocol state."""

    def __init__(self, server: FakeFluxServer, ws, rec: FluxConnection, number: int) -> None:
        self.srv, self.ws, self.rec, self.number = server, ws, rec, number
        enc = rec.query.get("encoding", "linear16")
        self.enc, self.rate = enc, int(rec.query.get("sample_rate", "16000"))
        self.bps = self.rate * (2 if enc == "linear16" else 1)
        self.eager_on = "eager_eot_threshold" in rec.query
        q = rec.query
        eager = q.get("eager_eot_threshold")
        self.thresholds = {"eot_threshold": float(q.get("eot_threshold", 0.7)),
                           "eager_eot_threshold": None if eager is None else float(eager)}
        self.seq = 0
        self.index = 0  # turn_index of the current/next turn
        self.active = False
        self.start = self.last_speech = self.last_update = 0.0
        self.last_speech_at = 0.0  # monotonic arrival of the last loud audio
        self.text = ""
        self.utt_i = 0
        self.script_i = 0
        self.later: set[asyncio.Task] = set()
        self.aborted = False  # an injected failure closed the connection

    @property
    def t(self) -> float:
        return self.rec.bytes_received / self.bps

    async def send(self, msg: dict) -> None:
        msg = {**msg, "sequence_id": self.seq}
        self.seq += 1
        self.rec.sent.append(msg)
        await self.ws.send(json.dumps(msg))

    def info(self, event: str, t0: float, t1: float, text: str, **extra) -> dict:
        words = text.split()
        span = max(t1 - t0, 0.01)
        wl = [
            {
                "word": w,
                "confidence": 0.95,
                "start": round(t0 + span * i / len(words), 3),
                "end": round(t0 + span * (i + 1) / len(words), 3),
            }
            for i, w in enumerate(words)
        ]
        return {
            "type": "TurnInfo",
            "request_id": "fake",
            "event": event,
            "turn_index": self.index,
            "audio_window_start": round(t0, 3),
            "audio_window_end": round(t1, 3),
            "transcript": text,
            "words": [] if event == "StartOfTurn" else wl,
            "end_of_turn_confidence": 0.9 if "End" in event else 0.1,
            **extra,
        }

    def schedule(self, delay: float, msg: dict) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            try:
                await self.send(msg)
            except ConnectionClosed:  # the client went away first
                pass

        task = asyncio.create_task(later())
        self.later.add(task)
        task.add_done_callback(self.later.discard)

    def end_turn(self, start: float, end: float, text: str, delay: float) -> None:
        """Schedule the end of the current turn ``delay`` s from now; the next turn gets a new index."""
        srv = self.srv
        if self.eager_on and srv.eager_lead is not None:
            self.schedule(max(0.0, delay - srv.eager_lead), self.info("EagerEndOfTurn", start, end, text))
            if srv.resume:
                self.schedule(
                    max(0.0, delay - srv.eager_lead / 2), self.info("TurnResumed", start, end, text)
                )
        self.schedule(delay, self.info("EndOfTurn", start, end, text, trigger="model"))
        self.index += 1
        self.active = False

    async def on_control(self, msg: dict) -> bool:
        """Handle a JSON message; True means the connection is done."""
        kind = msg.get("type")
        if kind == "CloseStream":
            self.rec.closed_by_client = True
            if self.later:
                await asyncio.wait(list(self.later), timeout=5)
            await self.ws.close()
            return True
        if kind == "Configure":
            problem = _configure_problem(msg, self.thresholds)
            if self.srv.configure_fail or problem:
                await self.send(
                    {
                        "type": "ConfigureFailure",
                        "request_id": "fake",
                        "code": "INVALID_THRESHOLD",
                        "description": problem or "eager_eot_threshold must be <= eot_threshold",
                    }
                )
            else:
                thresholds = msg.get("thresholds") or {}
                self.thresholds.update(thresholds)
                if "eager_eot_threshold" in thresholds:
                    self.eager_on = True
                await self.send(
                    {
                        "type": "ConfigureSuccess",
                        "request_id": "fake",
                        "thresholds": msg.get("thresholds", {}),
                        "keyterms": msg.get("keyterms", []),
                    }
                )
        elif kind == "ForceEndTurn" and self.active:
            await self.send(self.info("EndOfTurn", self.start, self.t, self.text, trigger="manual"))
            self.index += 1
            self.active = False
        return False

    def abort(self, reason: str) -> bool:
        """Close with 1011 in the background while the handler keeps draining what the client still
        sends; awaiting the close inline would stall once websockets pauses reading (max_queue)."""
        self.aborted = True
        task = asyncio.create_task(self.ws.close(1011, reason))
        self.later.add(task)
        task.add_done_callback(self.later.discard)
        return False

    async def on_audio(self, data: bytes) -> bool:
        """Advance the audio clock; True means the connection is done."""
        if self.aborted:
            return False
        srv, rec = self.srv, self.rec
        prev_t = self.t
        rec.bytes_received += len(data)
        rec.frames.append(len(data))
        if rec.audio is not None:
            rec.audio += data
        t = self.t
        if srv.error_after_s is not None and t >= srv.error_after_s and (
            srv.error_connections is None or self.number < srv.error_connections
        ):
            await self.send(
                {"type": "Error", "code": "INTERNAL_SERVER_ERROR", "description": "injected failure"}
            )
            srv.injected_at.append(time.monotonic())
            return self.abort("injected failure")
        if srv.close_after_s is not None and self.number < srv.close_connections and t >= srv.close_after_s:
            srv.injected_at.append(time.monotonic())
            return self.abort("injected close")
        while self.script_i < len(srv.script) and t >= srv.script[self.script_i][0]:
            msg = dict(srv.script[self.script_i][1])
            self.script_i += 1
            if "type" not in msg:
                msg = {**self.info(msg.get("event", "Update"), 0.0, t, msg.get("transcript", "")), **msg}
            await self.send(msg)
        if srv.energy:
            await self.energy_step(data, prev_t, t)
        elif self.utt_i < len(srv.utterances):
            await self.utterance_step(t)
        return False

    async def utterance_step(self, t: float) -> None:
        srv = self.srv
        start, end, text = srv.utterances[self.utt_i]
        words = text.split()
        if not self.active and t >= start:
            self.active, self.start, self.last_update, self.text = True, start, start, text
            await self.send(self.info("StartOfTurn", start, t, ""))
        if self.active and t < end and t - self.last_update >= srv.update_every:
            self.last_update = t
            n = max(1, int(len(words) * (t - start) / max(end - start, 0.01)))
            await self.send(self.info("Update", start, t, " ".join(words[:n])))
        if self.active and t >= end:
            self.utt_i += 1
            self.end_turn(start, end, text, srv.eot_delay)

    async def energy_step(self, data: bytes, prev_t: float, t: float) -> None:
        srv = self.srv
        if self.enc == "mulaw":
            pcm = g711.ulaw_decode(data)
        elif self.enc == "alaw":
            pcm = g711.alaw_decode(data)
        else:
            pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")
        loud = bool(len(pcm)) and float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > srv.energy_threshold
        if loud:
            if not self.active:
                self.active, self.start, self.last_update = True, prev_t, t
                self.text = srv.transcript_for(self.index)
                await self.send(self.info("StartOfTurn", prev_t, t, ""))
            self.last_speech, self.last_speech_at = t, time.monotonic()
        if not self.active:
            return
        if loud and t - self.last_update >= srv.update_every:
            self.last_update = t
            await self.send(self.info("Update", self.start, t, self.text))
        if not loud and t - self.last_speech >= srv.min_silence:
            self.end_turn(self.start, self.last_speech, self.text, srv.eot_delay)


def _configure_problem(msg: dict, current: dict) -> str:
    """Why Flux would answer ConfigureFailure ('' if the message is valid)."""
    th = msg.get("thresholds") or {}
    if not isinstance(th, dict) or set(th) - {"eot_threshold", "eager_eot_threshold", "eot_timeout_ms"}:
        return "unknown threshold"
    eot = th.get("eot_threshold", current["eot_threshold"])
    eager = th.get("eager_eot_threshold", current["eager_eot_threshold"])
    if not 0.5 <= float(eot) <= 1.0:
        return "eot_threshold must be within 0.5..1.0"
    if eager is not None and not 0.3 <= float(eager) <= 0.9:
        return "eager_eot_threshold must be within 0.3..0.9"
    if eager is not None and float(eager) > float(eot):
        return "eager_eot_threshold must be <= eot_threshold"
    if "eot_timeout_ms" in th and not 500 <= int(th["eot_timeout_ms"]) <= 60000:
        return "eot_timeout_ms must be within 500..60000"
    keyterms = msg.get("keyterms", [])
    if not (isinstance(keyterms, list) and all(isinstance(k, str) for k in keyterms)):
        return "keyterms must be a list of strings"
    return ""
