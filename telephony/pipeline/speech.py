"""One spoken reply: text pieces -> TTS utterance -> paced RTP, with barge-in and TTS fallback.

Tracks what was actually heard (bytes that left as RTP), so history keeps only the played part,
and stamps the waterfall: first TTS request, first TTS audio, first reply RTP packet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aioptions.providers.base import TTS, AudioFormat, TTSError
from telephony.codecs import g711

log = logging.getLogger(__name__)
CHARS_PER_SECOND = 15.0  # typical TTS speaking rate, to estimate text heard before TTS finishes


class SpokenReply:
    def __init__(self, call, tts: TTS, fmt: AudioFormat, next_tts: Callable[[], TTS | None],
                 errors: list[str]) -> None:
        self.call = call
        self.tts = tts
        self.fmt = fmt
        self.next_tts = next_tts
        self.errors = errors
        self.pieces: list[str] = []
        self.tts_request_at: float | None = None
        self.tts_first_audio_at: float | None = None
        self.first_rtp_at: float | None = None
        self.enqueued = 0  # bytes handed to the call (ever)
        self.dropped = 0  # bytes flushed by barge-in (never sent)
        self.done_tts = False
        self._utt = None
        self._audio_task: asyncio.Task | None = None
        self._finished = False
        self.cancelled = False
        self.barged = False  # cancelled because the caller spoke (not because the call ended)
        self._convert = self._converter()

    def _converter(self):
        codec = self.call.codec
        if self.fmt.encoding == "mulaw" and codec == "PCMA":
            return g711.ulaw_to_alaw
        if self.fmt.encoding == "alaw" and codec == "PCMU":
            return g711.alaw_to_ulaw
        return None

    def _on_first_sent(self, t: float) -> None:
        if self.first_rtp_at is None:
            self.first_rtp_at = t

    async def _open(self) -> None:
        self._utt = await self.tts.utterance(self.fmt)
        self._audio_task = asyncio.create_task(self._pump(self._utt))

    async def _pump(self, utt) -> None:
        try:
            async for chunk in utt.audio():
                if self.cancelled:
                    return
                if self.tts_first_audio_at is None:
                    self.tts_first_audio_at = utt.first_audio_at or time.monotonic()
                if self._convert is not None:
                    chunk = self._convert(chunk)
                self.call.play(chunk, self._on_first_sent if self.enqueued == 0 else None)
                self.enqueued += len(chunk)
            self.done_tts = True
        except TTSError as exc:
            await self._fail_over(exc)

    async def _fail_over(self, exc: TTSError) -> None:
        self.errors.append(f"tts {self.tts.name}: {exc.kind}: {exc}")
        log.warning("TTS %s failed (%s); falling back", self.tts.name, exc)
        nxt = self.next_tts()
        if nxt is None or self.cancelled:
            self.done_tts = True
            return
        self.tts = nxt
        heard = self.heard_text()
        remaining = "".join(self.pieces)[len(heard):]
        self._utt = await self.tts.utterance(self.fmt)
        if remaining.strip():
            await self._utt.push(remaining)
        if self._finished:
            await self._utt.finish()
        self._audio_task = asyncio.create_task(self._pump(self._utt))
        await self._audio_task

    async def push(self, piece: str) -> None:
        if self.cancelled or not piece:
            return
        if self._utt is None:
            self.tts_request_at = time.monotonic()
            try:
                await self._open()
            except TTSError as exc:
                self.pieces.append(piece)
                await self._fail_over(exc)
                return
        self.pieces.append(piece)
        try:
            await self._utt.push(piece)
        except TTSError as exc:
            await self._fail_over(exc)

    async def finish(self) -> None:
        """No more text; returns when all audio has been queued for sending."""
        self._finished = True
        if self._utt is None or self.cancelled:
            return
        try:
            await self._utt.finish()
        except TTSError as exc:
            await self._fail_over(exc)
        while self._audio_task is not None and not self._audio_task.done():
            await asyncio.shield(self._audio_task)

    async def wait_played(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.call.playout_queued_bytes and not self.cancelled and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def cancel(self) -> int:
        """Barge-in: drop queued audio at once and stop the TTS context. Returns bytes dropped."""
        self.cancelled = True
        dropped = self.call.clear_playout()
        self.dropped += dropped
        if self._utt is not None:
            try:
                await self._utt.cancel()
            except Exception:  # noqa: BLE001
                pass
        if self._audio_task is not None:
            self._audio_task.cancel()
        return dropped

    def heard_text(self) -> str:
        """The part of the reply the caller actually heard (cut at a word boundary)."""
        text = "".join(self.pieces).strip()
        queued = 0 if self.cancelled else self.call.playout_queued_bytes
        sent = self.enqueued - self.dropped - queued
        if sent <= 0:
            return ""
        if self.done_tts and sent >= self.enqueued:
            return text
        if self.done_tts:  # all audio known: the heard share of it
            chars = int(len(text) * sent / self.enqueued)
        else:  # audio still arriving: estimate from speaking rate
            chars = int(sent / 8000.0 * CHARS_PER_SECOND)
        if chars >= len(text):
            return text
        cut = text.rfind(" ", 0, chars + 1)
        return text[: max(cut, 0)].strip()
