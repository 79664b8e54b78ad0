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

import os
import struct
from pathlib import Path

import numpy as np

from telephony.codecs import g711

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


class StereoRecorder:
    def __init__(self, path: Path, codec: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.codec = codec
        self._caller = bytearray()
        self._agent = bytearray()
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close(), kept open for the call
        self._file.write(wav_header(0))
        self._file.flush()
        self.frames_written = 0
        self._closed = False

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
        left = g711.decode(self.codec, bytes(self._caller[:n]))
        right = g711.decode(self.codec, bytes(self._agent[:n]))
        del self._caller[:n]
        del self._agent[:n]
        stereo = np.empty(2 * n, dtype="<i2")
        stereo[0::2] = left
        stereo[1::2] = right
        f = self._file
        f.write(stereo.tobytes())
        f.flush()  # the data reaches the OS before the header claims it
        self.frames_written += n
        f.seek(0)
        f.write(wav_header(self.frames_written * BLOCK_ALIGN))
        f.seek(0, os.SEEK_END)
        f.flush()

    def close(self) -> Path:
        if not self._closed:
            try:
                self._flush()
            finally:
                self._file.close()
                self._closed = True
        return self.path

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
