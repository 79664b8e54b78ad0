"""Never dead air: what the caller hears while a provider is slow, timed from the end of their speech.

Policy (issue 13), all measured from ``speech_end`` on the bridge's clock, not from when a task got
round to starting a timer:
- ``FILLER_AT`` (1.0 s): no reply audio queued yet -> a short pre-rendered filler ("One moment.")
  is queued at once, so the caller hears something by ~1.0-1.1 s (the goal is 1.5 s).
- ``APOLOGY_AT`` (3.0 s): still no first token -> the apology is spoken and the next LLM is tried
  (see llmflow.py).
- nothing works -> a spoken goodbye and hang-up (agent.py).

Clips are rendered once per process per voice (and format) in the call's own voice while the
greeting plays, so playing one is a memory copy, not a TTS round trip; if a voice cannot render
them the offline voice does. The clock and sleep are injectable so tests need no wall-clock windows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aioptions.clock import Clock  # noqa: F401 - re-exported: the pipeline and tests say fillers.Clock
from aioptions.providers.base import TTS, AudioFormat

log = logging.getLogger("telephony.pipeline")

FILLER_AT = 1.0
APOLOGY_AT = 3.0
HEARD_BY = 1.5  # the promise: first audio of any kind within this of the end of speech
FILLER = "One moment."
APOLOGY = "Sorry, one moment."
GOODBYE = "Sorry, I'm having technical trouble right now. Please call back later. Goodbye."
TIME_UP = "I'm sorry, we have reached the time limit for this call. Goodbye."
CLIP_TEXTS = (FILLER, APOLOGY, GOODBYE)

_CLIPS: dict[tuple[str, str, str, int, str], bytes] = {}


def _key(tts: TTS, fmt: AudioFormat, text: str) -> tuple[str, str, str, int, str]:
    return (tts.name, tts.voice_id, fmt.encoding, fmt.sample_rate, text)


def cached_clip(tts: TTS, fmt: AudioFormat, text: str) -> bytes | None:
    return _CLIPS.get(_key(tts, fmt, text))


async def render_clips(tts: TTS, fmt: AudioFormat, timeout_s: float = 5.0) -> None:
    """Render the filler, apology and goodbye in ``tts``'s voice (once per process per voice)."""
    for text in CLIP_TEXTS:
        key = _key(tts, fmt, text)
        if key in _CLIPS:
            continue
        try:
            audio = await asyncio.wait_for(tts.synthesize(text, fmt), timeout_s)
        except Exception as exc:  # noqa: BLE001 - a clip is an optimisation; the offline voice covers
            log.info("could not pre-render %r with %s (%s)", text, tts.name, type(exc).__name__)
            return
        if audio:
            _CLIPS[key] = audio


async def clip(tts: TTS, fmt: AudioFormat, text: str, fallback: Callable[[], TTS]) -> bytes:
    """The clip in ``tts``'s voice if rendered, else rendered now (that voice, then ``fallback()``)."""
    audio = cached_clip(tts, fmt, text)
    if audio:
        return audio
    for voice in (tts, fallback()):
        try:
            audio = await asyncio.wait_for(voice.synthesize(text, fmt), 3.0)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not render %r with %s (%s)", text, voice.name, type(exc).__name__)
            continue
        if audio:
            _CLIPS[_key(voice, fmt, text)] = audio
            return audio
    return b""


class TurnDeadlines:
    """The deadlines of one turn, fixed at commit from the end of the caller's speech."""

    def __init__(self, speech_end: float, clock: Clock | None = None, filler_s: float = FILLER_AT,
                 apology_s: float = APOLOGY_AT) -> None:
        """``filler_s``/``apology_s`` come from the turn settings (options page); the defaults are the policy above."""
        self.speech_end = speech_end
        self.clock = clock or Clock()
        self.filler_at = speech_end + filler_s
        self.apology_at = speech_end + apology_s
        self.filler_played_at: float | None = None

    async def filler_watch(self, reply_started: Callable[[], bool], play: Callable[[], Awaitable[bool]]) -> None:
        """At ``filler_at``, if the reply has queued no audio, play the filler (once)."""
        await self.clock.sleep_until(self.filler_at)
        if reply_started():
            return
        if await play():
            self.filler_played_at = self.clock.now()

    def first_token_deadline(self, requested_at: float, timeout_s: float, attempt: int) -> float:
        """How long an LLM may stay silent: the first attempt until the apology (at least 1.5 s
        after its request, at most ``timeout_s``); later attempts ``timeout_s`` from their request."""
        if attempt == 0:
            return min(max(self.apology_at, requested_at + 1.5), requested_at + timeout_s)
        return requested_at + timeout_s
