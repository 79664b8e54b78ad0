"""Stereo call recording: left = caller, right = agent, 8 kHz 16-bit, time-aligned per 20 ms tick.

``write`` only appends G.711 bytes (cheap, once per tick); decoding and interleaving happen in
batches (~2 s) so memory stays bounded on long calls.

Crash safety: after every batch the RIFF and data sizes in the header are rewritten to cover the
audio written so far (data first, header second, both handed to the OS). A process killed with
SIGKILL therefore leaves a WAV that any player opens, missing at most the last batch; the OS page
cache keeps what was written, so no fsync is needed on the media path. ``repair_wav`` fixes files
written by older code or cut mid-write (used at start-up by the bridge's crash recovery).
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from aioptions.codecs import g711

log = logging.getLogger("telephony.bridge")

RATE = 8000
CHANNELS = 2
SAMPLE_BYTES = 2
BLOCK_ALIGN = CHANNELS * SAMPLE_BYTES
HEADER_BYTES = 44
_BATCH_BYTES = RATE * 2  # two seconds of G.711 per channel


def wav_header(data_bytes: int, *, channels: int = CHANNELS, rate: int = RATE,
               sample_bytes: int = SAMPLE_BYTES) -> bytes:
    """A canonical 44-byte PCM WAV header for ``data_bytes`` of sample data."""
    align = channels * sample_bytes
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, channels, rate,
                       rate * align, align, sample_bytes * 8, b"data", data_bytes)


_writer: ThreadPoolExecutor | None = None


def shared_writer() -> ThreadPoolExecutor:
    """The one thread that writes every call's recording, so no disk I/O runs on the event loop.
    One worker keeps each file's writes in order (FIFO)."""
    global _writer
    if _writer is None:
        _writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recording-writer")
    return _writer


class StereoRecorder:
    """``writer=None`` writes in the caller's thread (tools, tests); the bridge passes
    ``shared_writer()`` so the 20 ms tick only appends bytes and the disk work happens elsewhere."""

    def __init__(self, path: Path, codec: str, writer: Executor | None = None) -> None:
        self.path = Path(path)
        self.codec = codec
        self._caller = bytearray()
        self._agent = bytearray()
        self._writer = writer
        self._file = None
        self._pending: Future | None = None
        self.frames_written = 0
        self.error: str | None = None
        self._closed = False
        self._run(self._open)

    def _run(self, fn, *args) -> None:
        if self._writer is None:
            fn(*args)
        else:
            self._pending = self._writer.submit(fn, *args)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in _close_file, kept open for the call
            self._file.write(wav_header(0))
            self._file.flush()
        except OSError as exc:  # a recording is worth less than the call: log, keep talking
            self.error = str(exc)
            log.error("recording %s cannot be written: %s", self.path.name, exc)

    def write(self, caller_frame: bytes, agent_frame: bytes) -> None:
        if self._closed:
            return
        self._caller += caller_frame
        self._agent += agent_frame
        if len(self._caller) >= _BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        n = min(len(self._caller), len(self._agent))
        if not n:
            return
        caller, agent = bytes(self._caller[:n]), bytes(self._agent[:n])
        del self._caller[:n]
        del self._agent[:n]
        self._run(self._write_batch, caller, agent)

    def _write_batch(self, caller: bytes, agent: bytes) -> None:
        f = self._file
        if f is None:
            return
        n = len(caller)
        stereo = np.empty(2 * n, dtype="<i2")
        stereo[0::2] = g711.decode(self.codec, caller)
        stereo[1::2] = g711.decode(self.codec, agent)
        try:
            f.write(stereo.tobytes())
            f.flush()  # the data reaches the OS before the header claims it
            self.frames_written += n
            f.seek(0)
            f.write(wav_header(self.frames_written * BLOCK_ALIGN))
            f.seek(0, os.SEEK_END)
            f.flush()
        except (OSError, ValueError) as exc:
            if self.error is None:
                log.error("recording %s: write failed: %s", self.path.name, exc)
            self.error = str(exc)

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass

    def _finish(self) -> Future | None:
        if self._closed:
            return None
        self._closed = True
        self._flush()
        self._run(self._close_file)
        return self._pending

    def close(self) -> Path:
        """Write what is buffered and close the file (waits for the writer thread, if any)."""
        pending = self._finish()
        if pending is not None:
            pending.result(timeout=60)
        return self.path

    async def aclose(self) -> Path:
        """``close`` for the event loop: the last batch is written without blocking other calls."""
        pending = self._finish()
        if pending is not None:
            await asyncio.wrap_future(pending)
        return self.path

    def sync(self) -> None:
        """Wait until every batch handed to the writer is on disk (tests, tools)."""
        if self._pending is not None:
            self._pending.result(timeout=60)

    @property
    def duration_s(self) -> float:
        return (self.frames_written + len(self._caller)) / float(RATE)


def _find_chunks(head: bytes) -> tuple[tuple[int, int, int] | None, int | None]:
    """(channels, rate, sample_bytes) of the fmt chunk and the offset of the data chunk's size
    field, walking at most the first chunks of ``head``; (None, None) if this is no PCM WAV."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None, None
    fmt = None
    pos = 12
    for _ in range(16):  # bounded: a WAV has a handful of chunks before "data"
        if pos + 8 > len(head):
            break
        cid, size = head[pos:pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if cid == b"fmt " and pos + 24 <= len(head):
            tag, ch, rate, _, _, bits = struct.unpack_from("<HHIIHH", head, pos + 8)
            if tag == 1 and ch and bits in (8, 16, 24, 32):
                fmt = (ch, rate, bits // 8)
        elif cid == b"data":
            return fmt, pos + 4
        pos += 8 + size + (size & 1)
    return fmt, None


def repair_wav(path: Path) -> int | None:
    """Make the header of a WAV cut short by a crash match the audio in the file.

    Sets the data size to the whole sample frames present (dropping a torn last frame) and the
    RIFF size to match. Returns the number of frames now readable, or None if the file is not a
    PCM WAV we can repair (missing, empty, foreign format). Idempotent; a no-op on good files.
    """
    path = Path(path)
    try:
        with open(path, "r+b") as f:
            head = f.read(4096)
            fmt, size_at = _find_chunks(head)
            if fmt is None or size_at is None:
                return None
            align = fmt[0] * fmt[2]
            data_start = size_at + 4
            end = f.seek(0, os.SEEK_END)
            data = max(0, end - data_start)
            data -= data % align
            if data_start + data != end:
                f.truncate(data_start + data)
            current = struct.unpack_from("<I", head, size_at)[0]
            riff = struct.unpack_from("<I", head, 4)[0]
            if current != data or riff != data_start + data - 8:
                f.seek(4)
                f.write(struct.pack("<I", data_start + data - 8))
                f.seek(size_at)
                f.write(struct.pack("<I", data))
            return data // align
    except OSError:
        return None
