"""Sample-rate conversion: libsoxr (C) for whole signals, a hand-written polyphase filter for streams.

Both keep state across chunks, one object per call/stream, so 20 ms frame edges never click.

- ``resample()`` (one-shot: greetings, test audio) runs ``soxr.resample`` when the ``soxr`` package
  is installed: 1.2-1.5x the C ``audioop.ratecv`` at 8 -> 16 kHz and 2-3x at 16 -> 8 kHz, ~6x our
  filter (``python -m telephony.bench.codec``), with the exact length len * to / from.
- :class:`SoxrResampler` is the same library as a per-call stream. soxr compensates its own filter
  delay: ``process`` returns only what is final and holds the rest back (at 8 <-> 16 kHz 0-80 ms,
  released in ~60-100 ms blocks), so a caller needs ``flush()`` at the end.
- ``Resampler`` stays :class:`FilterResampler` (24 taps per phase, Kaiser-windowed sinc): it answers
  every 20 ms frame at once with 1.4 ms of delay, which a live stream into speech detection needs,
  and the offline engines' Whisper checks were tuned on its output (with soxr in offline STT or TTS,
  tiny.en hears "Thursday morning" as "Third name"/"Earned night morning": the signals correlate
  at 0.999, the model is that brittle), so moving them waits for the WER benchmark.
"""

from __future__ import annotations

from math import gcd

import numpy as np

try:
    import soxr
except ImportError:  # pragma: no cover - soxr is in requirements.txt; resample() falls back to the filter
    soxr = None

_TAPS_PER_PHASE = 24


def _design(up: int, down: int, taps_per_phase: int) -> np.ndarray:
    """Low-pass prototype at the upsampled rate, cut below the lower Nyquist, Kaiser window."""
    n = taps_per_phase * up
    cutoff = 0.5 / max(up, down) * 0.92  # cycles per upsampled sample, a little transition room
    m = n - 1  # odd-length filter (last tap zero) so the delay is a whole number of samples
    t = np.arange(m) - (m - 1) / 2.0
    h = np.zeros(n)
    h[:m] = 2 * cutoff * np.sinc(2 * cutoff * t) * np.kaiser(m, 8.0)
    h *= up / h.sum()  # unity DC gain after zero-stuffing
    return h


class FilterResampler:
    """Polyphase windowed-sinc; frame-by-frame output equals one-shot output exactly."""

    def __init__(self, from_rate: int, to_rate: int, taps_per_phase: int = _TAPS_PER_PHASE) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError("sample rates must be positive")
        g = gcd(from_rate, to_rate)
        self.up, self.down = to_rate // g, from_rate // g
        self.from_rate, self.to_rate = from_rate, to_rate
        self.k = taps_per_phase
        # phases[p] holds taps h[p + k*up] for k = 0..K-1, applied to x[i0 - k]
        h = _design(self.up, self.down, taps_per_phase)
        self._phases = h.reshape(taps_per_phase, self.up).T.copy()
        self._hist = np.zeros(taps_per_phase - 1, dtype=np.float64)  # last K-1 input samples
        self._consumed = 0  # absolute index of the first sample after the history
        self._n = 0  # absolute index of the next output sample
        self.passthrough = self.up == self.down

    def process(self, pcm: np.ndarray) -> np.ndarray:
        x = np.asarray(pcm, dtype=np.int16)
        if self.passthrough:
            return x.copy()
        buf = np.concatenate([self._hist, x.astype(np.float64)])
        if self.down == 1 or self.up == 1:
            return self._process_integer(x, buf)
        last = self._consumed + len(x) - 1  # absolute index of the newest input sample
        # outputs whose newest needed input sample i0 = floor(n*down/up) is available
        n_end = (last * self.up) // self.down + 1 if last >= 0 else 0
        count = max(0, n_end - self._n)
        if count:
            n = np.arange(self._n, self._n + count, dtype=np.int64)
            u = n * self.down
            i0 = u // self.up
            phase = u % self.up
            rel = i0 - self._consumed + (self.k - 1)  # index of x[i0] in buf
            idx = rel[:, None] - np.arange(self.k)[None, :]
            y = np.einsum("ij,ij->i", buf[idx], self._phases[phase])
            self._n += count
        else:
            y = np.zeros(0)
        self._consumed += len(x)
        self._hist = buf[len(buf) - (self.k - 1):] if self.k > 1 else buf[:0]
        return np.clip(np.rint(y), -32768, 32767).astype(np.int16)

    def _process_integer(self, x: np.ndarray, buf: np.ndarray) -> np.ndarray:
        """Integer up- or down-sampling with np.convolve (C speed); same maths as the general path."""
        if len(x) == 0:
            return np.zeros(0, dtype=np.int16)
        if self.down == 1:  # every input sample yields ``up`` outputs, one per phase
            y = np.stack([np.convolve(buf, self._phases[p], mode="valid") for p in range(self.up)], axis=1).ravel()
            self._n += len(y)
        else:  # one output for every ``down``-th input sample
            full = np.convolve(buf, self._phases[0], mode="valid")
            first = (-self._consumed) % self.down
            y = full[first::self.down]
            self._n += len(y)
        self._consumed += len(x)
        self._hist = buf[len(buf) - (self.k - 1):]
        return np.clip(np.rint(y), -32768, 32767).astype(np.int16)

    def flush(self) -> np.ndarray:
        """The filter's tail (half its length in zeros pushed through)."""
        if self.passthrough:
            return np.zeros(0, dtype=np.int16)
        return self.process(np.zeros(self.k // 2 + 1, dtype=np.int16))


class SoxrResampler:
    """libsoxr's streaming resampler (one ``soxr.ResampleStream`` per object), int16 in and out.

    Frame-by-frame output plus ``flush()`` equals the one-shot output within +-2 LSB (soxr's
    int16 dither/rounding differs at block edges), and its length is len(x) * to / from exactly.
    """

    def __init__(self, from_rate: int, to_rate: int, quality: str = "HQ") -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError("sample rates must be positive")
        if soxr is None:
            raise RuntimeError("soxr is not installed")
        self.from_rate, self.to_rate = from_rate, to_rate
        self.passthrough = from_rate == to_rate
        self._stream = None if self.passthrough else soxr.ResampleStream(from_rate, to_rate, 1, dtype="int16",
                                                                          quality=quality)
        self._done = False

    def process(self, pcm: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(pcm, dtype=np.int16)
        if self._stream is None:
            return x.copy()
        if self._done or not len(x):
            return np.zeros(0, dtype=np.int16)
        return self._stream.resample_chunk(x)

    def flush(self) -> np.ndarray:
        """Everything still held back; the stream is finished afterwards (process returns nothing)."""
        if self._stream is None or self._done:
            return np.zeros(0, dtype=np.int16)
        self._done = True
        return self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)


Resampler = FilterResampler


def resample(pcm: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """One-shot: the whole signal, tail included (soxr's one-shot call skips the stream's block
    bookkeeping, ~20 % faster than process + flush)."""
    if soxr is None or from_rate == to_rate:
        r = FilterResampler(from_rate, to_rate)
        return np.concatenate([r.process(pcm), r.flush()])
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError("sample rates must be positive")
    return soxr.resample(np.ascontiguousarray(pcm, dtype=np.int16), from_rate, to_rate)
