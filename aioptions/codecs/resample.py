"""Streaming rational resampler (polyphase windowed-sinc) with state carried across frames.

Feeding a signal in 20 ms frames gives exactly the same output as feeding it at once, so frame
edges never click. Used for 8 <-> 16 kHz (STT/recording) and TTS engine rates -> 8 kHz.
"""

from __future__ import annotations

from math import gcd

import numpy as np

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


class Resampler:
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


def resample(pcm: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """One-shot helper."""
    r = Resampler(from_rate, to_rate)
    return np.concatenate([r.process(pcm), r.flush()])
