"""Answering-machine detection on the first seconds after an outbound call is answered, and the
wait for the beep before a voicemail message.

The classifier follows Asterisk's AMD application (app_amd.c) and its ``amd.conf`` defaults: a
person answers with a short word or two ("Hello?") and then waits; a machine either talks for
longer (a greeting over ``greeting_ms`` of voice, or more than ``maximum_number_of_words`` words)
or says nothing at all for ``initial_silence_ms``. Frames are 20 ms of 8 kHz PCM; a frame is voice
when its mean absolute amplitude reaches ``silence_threshold``. Pure numpy, no I/O: the gateway
feeds it from the media clock's tick (``RtpSession.on_audio``), so it costs one mean per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_MS = 20


@dataclass(frozen=True)
class AmdParams:
    initial_silence_ms: int = 2500
    greeting_ms: int = 1500
    after_greeting_silence_ms: int = 800
    total_analysis_ms: int = 5000
    min_word_length_ms: int = 100
    between_words_silence_ms: int = 50
    maximum_number_of_words: int = 2
    silence_threshold: int = 256


class Amd:
    """Feed 20 ms frames; ``verdict`` becomes "human", "machine" or "notsure" (then treat as human)."""

    def __init__(self, params: AmdParams | None = None) -> None:
        self.p = params or AmdParams()
        self.verdict: str | None = None
        self.reason = ""
        self.elapsed = self.silence = self.voice = self.consecutive_voice = 0
        self.words = 0
        self.in_word = False
        self.in_greeting = False
        self.initial_silence = True

    def _decide(self, verdict: str, reason: str) -> str:
        self.verdict, self.reason = verdict, reason
        return verdict

    def feed(self, pcm: np.ndarray) -> str | None:
        if self.verdict is not None:
            return self.verdict
        p = self.p
        self.elapsed += FRAME_MS
        if float(np.abs(pcm.astype(np.int32)).mean()) < p.silence_threshold:
            self.silence += FRAME_MS
            self.consecutive_voice = 0
            if self.silence >= p.between_words_silence_ms:
                self.in_word = False
            if self.initial_silence and self.silence >= p.initial_silence_ms:
                return self._decide("machine", f"initial silence {self.silence} ms")
            if self.in_greeting and self.silence >= p.after_greeting_silence_ms:
                return self._decide("human", f"{self.voice} ms of voice then {self.silence} ms of silence")
        else:
            self.consecutive_voice += FRAME_MS
            self.voice += FRAME_MS
            if self.voice >= p.min_word_length_ms:  # as app_amd: any voice, once some was heard, ends a silence
                self.silence = 0
            if self.consecutive_voice >= p.min_word_length_ms:
                if not self.in_word:
                    self.in_word = True
                    self.words += 1
                    if self.words > p.maximum_number_of_words:
                        return self._decide("machine", f"more than {p.maximum_number_of_words} words")
                self.initial_silence = False
                self.in_greeting = True
                self.silence = 0
            if self.in_greeting and self.voice >= p.greeting_ms:
                return self._decide("machine", f"greeting longer than {p.greeting_ms} ms")
        if self.elapsed >= p.total_analysis_ms:
            return self._decide("notsure", f"no decision in {p.total_analysis_ms} ms")
        return None


class BeepOrSilence:
    """After a machine answered: the moment to speak is the beep (a steady tone of at least
    ``beep_ms``: one FFT bin holds most of the frame's energy) or, with no beep, ``silence_ms`` of
    silence after the greeting."""

    def __init__(self, *, beep_ms: int = 100, silence_ms: int = 1500, threshold: int = 256) -> None:
        self.beep_ms, self.silence_ms, self.threshold = beep_ms, silence_ms, threshold
        self.tone = self.quiet = 0
        self.heard_voice = self.beeped = False
        self.done: str | None = None  # "beep" | "silence"

    def feed(self, pcm: np.ndarray) -> str | None:
        if self.done:
            return self.done
        x = pcm.astype(np.float64)
        loud = float(np.abs(x).mean()) >= self.threshold
        if loud:
            spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
            total = float(spectrum[1:].sum())
            peak = int(np.argmax(spectrum[1:])) + 1
            share = float(spectrum[max(1, peak - 1):peak + 2].sum()) / total if total else 0.0
            self.tone = self.tone + FRAME_MS if share > 0.8 else 0
            self.quiet = 0
            self.heard_voice = True
            if self.tone >= self.beep_ms:
                self.beeped = True  # speak when it ends
            elif self.tone == 0 and self.beeped:
                self.done = "beep"
        else:
            self.tone = 0
            if self.beeped:
                self.done = "beep"
                return self.done
            self.quiet += FRAME_MS
            if self.quiet >= self.silence_ms:
                self.done = "silence"
        return self.done
