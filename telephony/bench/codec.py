"""G.711 and resampling throughput vs stdlib audioop on the same data (audioop is imported here for
comparison; on 3.13+ it comes from audioop-lts). python -m telephony.bench.codec [--repeat N]

"ours" is what the call path runs: G.711 decode through ``g711.ulaw_decode`` (audioop's C loop when
present, see g711.C_DECODE) and resampling through ``resample()`` (soxr when installed; the
``*_stream`` rows are a per-call ``SoxrResampler`` stream fed a minute then flushed). The
alternatives are measured beside it on the same data: the numpy pair-table decode, the hand-written
polyphase filter (FilterResampler), and per 20 ms frame the way a call feeds them.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from aioptions.codecs import g711
from aioptions.codecs import resample as rs

from . import write


def _race(runs: list[tuple], seconds_of_audio: float, repeat: int) -> list[float]:
    """x real time of each (fn, data), best of ``repeat``, the contenders interleaved within every
    pass: on a shared machine a slow spell then hits all of them, not whichever ran during it."""
    best = [float("inf")] * len(runs)
    for _ in range(repeat):
        for i, (fn, data) in enumerate(runs):
            t = time.perf_counter()
            fn(data)
            best[i] = min(best[i], time.perf_counter() - t)
    return [seconds_of_audio / b for b in best]  # seconds of audio processed per second


def _per_frame_us(fn, frame, n: int = 20000) -> float:
    """Best of three runs of n calls (the machine is shared: the minimum is the least disturbed)."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            fn(frame)
        best = min(best, time.perf_counter() - t)
    return round(best / n * 1e6, 2)


def _oneshot(cls, a: int, b: int):
    def run(d: np.ndarray) -> np.ndarray:
        r = cls(a, b)
        return np.concatenate([r.process(d), r.flush()])
    return run


def run(repeat: int = 5) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    rng = np.random.default_rng(0)
    secs = 60.0
    pcm = (rng.standard_normal(int(8000 * secs)) * 4000).astype(np.int16)
    raw = pcm.tobytes()
    ulaw = g711.ulaw_encode(pcm)
    alaw = g711.alaw_encode(pcm)
    pcm16 = (rng.standard_normal(int(16000 * secs)) * 4000).astype(np.int16)
    soxr_ok = rs.soxr is not None
    # name: (ours, our data, audioop, its data, alternative label, alternative)
    cases = {
        "ulaw_encode": (g711.ulaw_encode, pcm, lambda d: audioop.lin2ulaw(d, 2), raw, None, None),
        "ulaw_decode": (g711.ulaw_decode, ulaw, lambda d: audioop.ulaw2lin(d, 2), ulaw, "numpy", g711._numpy_ulaw),
        "alaw_encode": (g711.alaw_encode, pcm, lambda d: audioop.lin2alaw(d, 2), raw, None, None),
        "alaw_decode": (g711.alaw_decode, alaw, lambda d: audioop.alaw2lin(d, 2), alaw, "numpy", g711._numpy_alaw),
        "resample_8k_16k": (lambda d: rs.resample(d, 8000, 16000), pcm,
                            lambda d: audioop.ratecv(d, 2, 1, 8000, 16000, None), raw,
                            "filter", _oneshot(rs.FilterResampler, 8000, 16000)),
        "resample_16k_8k": (lambda d: rs.resample(d, 16000, 8000), pcm16,
                            lambda d: audioop.ratecv(d, 2, 1, 16000, 8000, None), pcm16.tobytes(),
                            "filter", _oneshot(rs.FilterResampler, 16000, 8000)),
    }
    if soxr_ok:  # the stream object a call holds, fed the whole minute then flushed
        cases["resample_8k_16k_stream"] = (_oneshot(rs.SoxrResampler, 8000, 16000), pcm,
                                           cases["resample_8k_16k"][2], raw, None, None)
        cases["resample_16k_8k_stream"] = (_oneshot(rs.SoxrResampler, 16000, 8000), pcm16,
                                           cases["resample_16k_8k"][2], pcm16.tobytes(), None, None)
    results: dict = {"g711_decode_path": "audioop C loop" if g711.C_DECODE else "numpy pair table",
                     "resample()": "soxr" if soxr_ok else "filter", "Resampler": rs.Resampler.__name__,
                     "repeat": repeat}
    for name, (ours, our_data, ref, ref_data, alt_name, alt) in cases.items():
        runs = [(ours, our_data), (ref, ref_data)] + ([(alt, our_data)] if alt is not None else [])
        a, b, *rest = _race(runs, secs, repeat)
        row = {"ours_x_realtime": round(a), "audioop_x_realtime": round(b), "ratio": round(a / b, 2)}
        if rest:
            x = rest[0]
            row[f"{alt_name}_x_realtime"] = round(x)
            row[f"{alt_name}_ratio_vs_audioop"] = round(x / b, 2)
        results[name] = row
    if soxr_ok:
        for k in ("resample_8k_16k", "resample_16k_8k"):  # the suite's table reads these
            results[k]["soxr_x_realtime"] = results[k]["ours_x_realtime"]
            results[k]["soxr_ratio_vs_audioop"] = results[k]["ratio"]
    # per 20 ms frame, the way the call path uses them (a stream object per call)
    frame, frame16, ulaw_frame = pcm[:160], pcm16[:320], ulaw[:160]
    per = {
        "ulaw_encode": _per_frame_us(g711.ulaw_encode, frame),
        "ulaw_decode": _per_frame_us(g711.ulaw_decode, ulaw_frame),
        "ulaw_decode_numpy": _per_frame_us(g711._numpy_ulaw, ulaw_frame),
        "ulaw_decode_audioop": _per_frame_us(lambda d: audioop.ulaw2lin(d, 2), ulaw_frame),
        "resample_8k_16k_filter": _per_frame_us(rs.FilterResampler(8000, 16000).process, frame),
        "resample_16k_8k_filter": _per_frame_us(rs.FilterResampler(16000, 8000).process, frame16),
    }
    state: list = [None]

    def ratecv(d: bytes) -> bytes:
        out, state[0] = audioop.ratecv(d, 2, 1, 8000, 16000, state[0])
        return out
    per["resample_8k_16k_audioop"] = _per_frame_us(ratecv, frame.tobytes())
    if soxr_ok:
        per["resample_8k_16k_soxr"] = _per_frame_us(rs.SoxrResampler(8000, 16000).process, frame)
        per["resample_16k_8k_soxr"] = _per_frame_us(rs.SoxrResampler(16000, 8000).process, frame16)
    results["per_frame_us"] = per
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="best of N passes over 60 s of audio")
    res = run(max(1, min(ap.parse_args().repeat, 50)))
    for k, v in res.items():
        print(f"{k:28s} {v}")
    print("written to", write("codec", res))


if __name__ == "__main__":
    main()
