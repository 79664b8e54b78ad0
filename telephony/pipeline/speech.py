"""One spoken reply: text pieces -> TTS utterance -> paced RTP, with barge-in and TTS fallback.

The reply keeps a ledger of every byte it handed to the call (filler and apology clips included)
and, where the TTS marks them (Cartesia's flush_done), where each piece's audio ends in it. That is
what makes two things exact rather than estimated:
- what the caller heard (history and the Turn row keep only that), and
- where a failover resumes: audio of a piece the TTS did not finish is taken back out of the
  playout queue if none of it has played, and the fallback voice starts at that piece; if the
  caller is already hearing it, it plays out and the fallback starts at the next piece. Either way
  no word is heard twice.
It also stamps the waterfall: first TTS request, first TTS audio, first reply RTP packet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aioptions.codecs import g711
from aioptions.providers.base import TTS, AudioFormat, TTSError

log = logging.getLogger(__name__)
CHARS_PER_SECOND = 15.0  # typical TTS speaking rate, to estimate text heard where the TTS marks nothing


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
        self.ledger = bytearray()  # every byte handed to the call, in order
        self.ends: dict[int, int] = {}  # piece index -> ledger offset where its audio ends
        self.spoken_by: list[tuple[str, int]] = []  # (tts name, piece index) as pushed, for logs and tests
        self.dropped = 0  # bytes flushed by barge-in (never sent)
        self.speech_start = 0  # ledger offset of the first reply (not clip) byte, once there is one
        self.enqueued_speech = 0  # reply bytes (not clips) handed to the call
        self.done_tts = False
        self._utt = None
        self._utt_base = 0  # ledger offset where the current utterance's audio starts
        self._utt_first = 0  # index of the first piece pushed to the current utterance
        self._audio_task: asyncio.Task | None = None
        self._finished = False
        # while a failover re-speaks the pieces on the next voice, new pieces only queue behind them
        self._switching = False
        self._switch_done = asyncio.Event()
        self.cancelled = False
        self.barged = False  # cancelled because the caller spoke (not because the call ended)
        self._convert = self._converter()

    @property
    def enqueued(self) -> int:
        return len(self.ledger)

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

    def _play(self, chunk: bytes, speech: bool) -> None:
        if speech and not self.enqueued_speech:
            self.speech_start = len(self.ledger)
        mark = self._on_first_sent if speech and not self.enqueued_speech else None
        self.call.play(chunk, mark)
        self.ledger += chunk
        if speech:
            self.enqueued_speech += len(chunk)

    def play_extra(self, audio: bytes) -> None:
        """Queue a clip (filler, apology) that is not part of the reply's text."""
        if not self.cancelled and audio:
            self._play(self._convert(audio) if self._convert else audio, speech=False)

    @property
    def played(self) -> int:
        """Ledger bytes that have left as RTP."""
        queued = 0 if self.cancelled else self.call.playout_queued_bytes
        return max(0, len(self.ledger) - self.dropped - queued)

    async def _open(self) -> None:
        self._utt = await self.tts.utterance(self.fmt)
        self._utt_base, self._utt_first = len(self.ledger), len(self.pieces)
        self._audio_task = asyncio.create_task(self._pump(self._utt))

    def _sync_marks(self, utt) -> None:
        if utt.marks_pieces:
            for j, end in enumerate(utt.piece_ends):
                self.ends.setdefault(self._utt_first + j, self._utt_base + end)

    async def _pump(self, utt) -> None:
        try:
            async for chunk in utt.audio():
                if self.cancelled:
                    return
                if self.tts_first_audio_at is None:
                    self.tts_first_audio_at = utt.first_audio_at or time.monotonic()
                self._play(self._convert(chunk) if self._convert else chunk, speech=True)
                self._sync_marks(utt)
            self._sync_marks(utt)
            if self._finished:
                for i in range(self._utt_first, len(self.pieces)):
                    self.ends.setdefault(i, len(self.ledger))
            self.done_tts = True
        except TTSError as exc:
            self._sync_marks(utt)
            await self._fail_over(exc)

    def _resume_point(self) -> int:
        """The first piece the fallback voice must say; takes unheard partial audio back out of the queue."""
        utt = self._utt
        complete = self._utt_first + (len(utt.piece_ends) if utt is not None and utt.marks_pieces else 0)
        if utt is not None and utt.marks_pieces:
            boundary = self.ends.get(complete - 1, self._utt_base)
        else:  # no marks: estimate which pieces the received audio covers
            covered = (len(self.ledger) - self._utt_base) / self.fmt.bytes_per_second * CHARS_PER_SECOND
            chars = 0
            while complete < len(self.pieces) and chars + len(self.pieces[complete]) <= covered:
                chars += len(self.pieces[complete])
                complete += 1
            boundary = len(self.ledger)
        if complete >= len(self.pieces) or boundary >= len(self.ledger):
            return complete  # nothing partial was received
        played = self.played
        if played > boundary:
            return complete + 1  # the caller is hearing it: let it finish, go on with the next piece
        # the partial piece is unheard: take it back out of the queue, re-queue what precedes it
        self.call.clear_playout()
        removed = len(self.ledger) - boundary
        del self.ledger[boundary:]
        self.enqueued_speech = max(0, self.enqueued_speech - removed)
        mark = self._on_first_sent if self.first_rtp_at is None and self.enqueued_speech else None
        split = min(max(self.speech_start, played), boundary)
        if split > played:
            self.call.play(bytes(self.ledger[played:split]))
        if boundary > split:
            self.call.play(bytes(self.ledger[split:boundary]), mark)
        return complete

    async def _fail_over(self, exc: TTSError) -> None:
        self.errors.append(f"tts {self.tts.name}: {exc.kind}: {exc}")
        log.warning("TTS %s failed (%s); falling back", self.tts.name, exc)
        nxt = self.next_tts()
        if nxt is None or self.cancelled:
            self.done_tts = True
            return
        resume = self._resume_point()
        self.errors.append(f"tts {nxt.name}: resumed at piece {resume} of {len(self.pieces)}")
        self._switching, self._switch_done = True, asyncio.Event()
        try:
            self.tts = nxt
            self._utt = await self.tts.utterance(self.fmt)
            self._utt_base, self._utt_first = len(self.ledger), resume
            i = resume
            while i < len(self.pieces):  # pieces that arrive meanwhile are appended: spoken here, in order
                await self._utt.push(self.pieces[i])
                self.spoken_by.append((self.tts.name, i))
                i += 1
            if self._finished:
                await self._utt.finish()
            self._audio_task = asyncio.create_task(self._pump(self._utt))
        finally:
            self._switching = False
            self._switch_done.set()
        await self._audio_task

    async def push(self, piece: str) -> None:
        if self.cancelled or not piece:
            return
        if self._switching:  # the failover in progress speaks it after the pieces before it
            self.pieces.append(piece)
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
        self.spoken_by.append((self.tts.name, len(self.pieces) - 1))
        try:
            await self._utt.push(piece)
        except TTSError as exc:
            self.spoken_by.pop()
            await self._fail_over(exc)

    async def finish(self) -> None:
        """No more text; returns when all audio has been queued for sending."""
        self._finished = True
        if self._switching:
            await self._switch_done.wait()  # the failover finishes the new voice's utterance itself
        elif self._utt is None or self.cancelled:
            return
        else:
            try:
                await self._utt.finish()
            except TTSError as exc:
                await self._fail_over(exc)
        while self._audio_task is not None and not self._audio_task.done():
            await asyncio.shield(self._audio_task)

    async def wait_played(self, timeout: float = 60.0) -> None:
        """Until the queued reply has been sent; a barge-in clears the queue, which ends the wait too."""
        if not self.cancelled:
            await self.call.playout_drained(timeout)

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
        played = self.played
        if played <= self.speech_start or not self.pieces:
            return ""
        heard: list[str] = []
        start = self.speech_start
        i = 0
        while i < len(self.pieces):
            end = self.ends.get(i)
            if end is not None and end <= played:
                heard.append(self.pieces[i])
                start, i = end, i + 1
                continue
            # the part being heard: pieces sharing this end (or all unmarked ones) as one text
            j = i + 1
            while j < len(self.pieces) and self.ends.get(j) == end:
                j += 1
            text = "".join(self.pieces[i:j])
            if end is not None and end > start:
                chars = int(len(text) * (played - start) / (end - start))
            else:
                chars = int((played - start) / self.fmt.bytes_per_second * CHARS_PER_SECOND)
            if chars >= len(text):
                heard.append(text)
            else:
                cut = text.rfind(" ", 0, chars + 1)
                heard.append(text[: max(cut, 0)])
            break
        return " ".join(" ".join(heard).split())
