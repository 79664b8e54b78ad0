"""G.711 and resampling throughput vs stdlib audioop on the same data (audioop is only imported
here, for comparison; it is gone in Python 3.13). python -m telephony.bench.codec"""

from __future__ import annotations

import time
import warnings

import numpy as np

from aioptions.codecs import g711
from aioptions.codecs.resample import Resampler

from . import write


def _rate(fn, data, seconds_of_audio: float, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(data)
        best = min(best, time.perf_counter() - t)
    return seconds_of_audio / best  # seconds of audio processed per second


def run() -> dict:
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
    cases = {
        "ulaw_encode": (lambda d: g711.ulaw_encode(d), pcm, lambda d: audioop.lin2ulaw(d, 2), raw),
        "ulaw_decode": (lambda d: g711.ulaw_decode(d), ulaw, lambda d: audioop.ulaw2lin(d, 2), ulaw),
        "alaw_encode": (lambda d: g711.alaw_encode(d), pcm, lambda d: audioop.lin2alaw(d, 2), raw),
        "alaw_decode": (lambda d: g711.alaw_decode(d), alaw, lambda d: audioop.alaw2lin(d, 2), alaw),
        "resample_8k_16k": (lambda d: Resampler(8000, 16000).process(d), pcm,
                            lambda d: audioop.ratecv(d, 2, 1, 8000, 16000, None), raw),
        "resample_16k_8k": (lambda d: Resampler(16000, 8000).process(d), pcm16,
                            lambda d: audioop.ratecv(d, 2, 1, 16000, 8000, None), pcm16.tobytes()),
    }
    results = {}
    for name, (ours, our_data, ref, ref_data) in cases.items():
        a = _rate(ours, our_data, secs)
        b = _rate(ref, ref_data, secs)
        results[name] = {"ours_x_realtime": round(a), "audioop_x_realtime": round(b), "ratio": round(a / b, 2)}
    try:  # soxr (LGPL-2.1, PyPI), measured as a candidate for the resampler; optional here
        import soxr

        for name, (a_rate, b_rate, data) in {"resample_8k_16k": (8000, 16000, pcm),
                                             "resample_16k_8k": (16000, 8000, pcm16)}.items():
            x = _rate(lambda d, a_rate=a_rate, b_rate=b_rate: soxr.resample(d, a_rate, b_rate), data, secs)
            results[name]["soxr_x_realtime"] = round(x)
            results[name]["soxr_ratio_vs_audioop"] = round(x / results[name]["audioop_x_realtime"], 2)
        stream = soxr.ResampleStream(8000, 16000, 1, dtype="int16")
        n, frame = 20000, pcm[:160]
        t = time.perf_counter()
        for _ in range(n):
            stream.resample_chunk(frame)
        results["soxr_stream_8k_16k_per_frame_us"] = round((time.perf_counter() - t) / n * 1e6, 2)
    except ImportError:
        results["soxr"] = "not installed"
    # per 20 ms frame, the way the call path uses it
    frame = pcm[:160]
    r = Resampler(8000, 16000)
    n = 20000
    t = time.perf_counter()
    for _ in range(n):
        g711.ulaw_encode(frame)
    results["ulaw_encode_per_frame_us"] = round((time.perf_counter() - t) / n * 1e6, 2)
    ulaw_frame = ulaw[:160]
    t = time.perf_counter()
    for _ in range(n):
        g711.ulaw_decode(ulaw_frame)
    results["ulaw_decode_per_frame_us"] = round((time.perf_counter() - t) / n * 1e6, 2)
    t = time.perf_counter()
    for _ in range(n):
        r.process(frame)
    results["resample_8k_16k_per_frame_us"] = round((time.perf_counter() - t) / n * 1e6, 2)
    return results


def main() -> None:
    res = run()
    for k, v in res.items():
        print(f"{k:28s} {v}")
    print("written to", write("codec", res))


if __name__ == "__main__":
    main()
