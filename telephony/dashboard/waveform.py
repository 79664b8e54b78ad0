"""Peaks and speech segments of a stereo call recording (left = caller, right = agent), for the call
page's two-lane waveform and the transcript's click-to-play times.

Computed from the WAV on the server in the request's worker thread (Django runs sync views off the
event loop), with numpy over a memory map, so a long call costs one pass and no Python loop per
sample. Results are cached per file (path, size, mtime): a finished recording never changes.

Turn rows carry no recording offsets, so the transcript is aligned from the audio itself: a turn's
row is written when its reply finished playing (or was cut by barge-in), so ``created_at`` minus the
recording's start is the end of that reply; the reply starts where the agent lane's speech run
containing that moment starts, and the caller's line where the caller lane's run before it starts.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from telephony.media.recording import _find_chunks

FRAME_S = 0.02
VOICED = 600  # |sample| peak of a 20 ms frame that counts as sound (16-bit scale)
GAP_S = 0.6  # silences shorter than this stay inside one run (pauses between sentences)


@dataclass(frozen=True)
class Recording:
    duration_s: float
    caller_peaks: tuple[float, ...]  # 0..1 per bucket
    agent_peaks: tuple[float, ...]
    caller_runs: tuple[tuple[float, float], ...]  # (start_s, end_s) of sound on each lane
    agent_runs: tuple[tuple[float, float], ...]


def _runs(frame_peaks: np.ndarray) -> tuple[tuple[float, float], ...]:
    voiced = np.flatnonzero(frame_peaks >= VOICED)
    if not len(voiced):
        return ()
    gap = int(GAP_S / FRAME_S)
    breaks = np.flatnonzero(np.diff(voiced) > gap)
    starts = np.concatenate(([voiced[0]], voiced[breaks + 1]))
    ends = np.concatenate((voiced[breaks], [voiced[-1]])) + 1
    pairs = zip(starts, ends, strict=True)
    return tuple((round(float(s) * FRAME_S, 2), round(float(e) * FRAME_S, 2)) for s, e in pairs)


def _bucket_peaks(lane: np.ndarray, buckets: int) -> tuple[float, ...]:
    if not len(lane):
        return ()
    n = min(buckets, len(lane))
    edges = np.linspace(0, len(lane), n + 1).astype(np.int64)
    peaks = np.maximum.reduceat(np.abs(lane.astype(np.int32)), edges[:-1])
    return tuple(round(float(p) / 32768.0, 3) for p in peaks)


@functools.lru_cache(maxsize=32)
def _analyse(path: str, size: int, mtime: float, buckets: int) -> Recording | None:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    fmt, size_at = _find_chunks(head)
    if fmt is None or size_at is None or fmt[0] != 2 or fmt[2] != 2:
        return None
    rate = fmt[1]
    offset = size_at + 4
    declared = struct.unpack_from("<I", head, size_at)[0]
    frames = min(declared, max(0, size - offset)) // 4  # a live call's file may run ahead of its header
    if frames <= 0:
        return Recording(0.0, (), (), (), ())
    data = np.memmap(path, dtype="<i2", mode="r", offset=offset, shape=(frames, 2))
    caller, agent = data[:, 0], data[:, 1]
    per_frame = max(1, int(rate * FRAME_S))
    whole = (frames // per_frame) * per_frame

    def frame_peaks(lane: np.ndarray) -> np.ndarray:
        return np.abs(lane[:whole].astype(np.int32)).reshape(-1, per_frame).max(axis=1) if whole else np.zeros(0)

    rec = Recording(frames / rate, _bucket_peaks(caller, buckets), _bucket_peaks(agent, buckets),
                    _runs(frame_peaks(caller)), _runs(frame_peaks(agent)))
    del data
    return rec


def analyse(path: Path, buckets: int = 600) -> Recording | None:
    """Peaks and runs of a 16-bit stereo WAV, or None when it is missing or not one."""
    try:
        st = path.stat()
    except OSError:
        return None
    return _analyse(str(path), st.st_size, st.st_mtime, buckets)


def _run_at(runs, t: float, slack: float = 0.3) -> tuple[float, float] | None:
    """The run containing ``t`` (or ending within ``slack`` before it)."""
    best = None
    for start, end in runs:
        if start <= t + slack and end >= t - slack:
            best = (start, end)
        elif start > t + slack:
            break
    return best


def align(turns, rec: Recording, call_start, *, lead_s: float = 0.3) -> list[dict]:
    """Recording times of each turn's lines: ``{"user_at", "agent_at"}`` (seconds, or None).

    ``call_start`` is when the recording began (the Call row's ``started_at``: the bridge creates the
    recorder with the row)."""
    out = []
    prev_agent = 0.0
    for t in turns:
        reply_end = (t.created_at - call_start).total_seconds() if t.created_at and call_start else None
        agent_at = user_at = None
        if reply_end is not None and 0 <= reply_end <= rec.duration_s + 2:
            run = _run_at(rec.agent_runs, reply_end) if t.agent_text else None
            if run is not None and run[0] >= prev_agent:
                agent_at = run[0]
            speech_end = (agent_at - (t.mouth_to_ear_ms or 0) / 1000.0) if agent_at is not None else reply_end
            before = [r for r in rec.caller_runs if r[0] < speech_end and r[0] >= prev_agent - 1.0]
            user_at = before[-1][0] if before else None
        if agent_at is not None:
            prev_agent = agent_at
        out.append({"user_at": None if user_at is None else max(0.0, round(user_at - lead_s / 3, 2)),
                    "agent_at": agent_at})
    return out
