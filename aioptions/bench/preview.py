"""Voice preview latency: uncached (fake Cartesia at a fixed TTFB) vs cached, p50/p95 over N
requests, timed inside the service (the server's share). python -m aioptions.bench.preview"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time


async def run(n: int, ttfb_ms: float) -> dict:
    from django.conf import settings

    from aioptions.bench import pct
    from aioptions.fakes.cartesia_server import FakeCartesiaServer
    from aioptions.preview import service

    fake = await FakeCartesiaServer(ttfb_ms=ttfb_ms, speedup=0).start()
    settings.MEDIA_ROOT = tempfile.mkdtemp(prefix="previewbench-")
    settings.CARTESIA_API_KEY = "bench"
    settings.CARTESIA_BASE_URL, settings.CARTESIA_WS_URL = fake.http_url, fake.ws_url
    voice = "f786b574-daa5-4673-aa0c-cbe3e8534c02"
    uncached, cached = [], []
    try:
        for i in range(n):
            text = f"Preview number {i}, is now a good time?"
            t = time.perf_counter()
            p = await service.get_preview(voice, text)
            uncached.append((time.perf_counter() - t) * 1000)
            assert not p.cached
            t = time.perf_counter()
            p = await service.get_preview(voice, text)
            cached.append((time.perf_counter() - t) * 1000)
            assert p.cached
    finally:
        await fake.stop()
    return {"requests": n, "fake_ttfb_ms": ttfb_ms, "provider_calls": sum(fake.requests_by_voice.values()),
            "uncached_ms_p50": round(pct(uncached, 50), 2), "uncached_ms_p95": round(pct(uncached, 95), 2),
            "cached_ms_p50": round(pct(cached, 50), 3), "cached_ms_p95": round(pct(cached, 95), 3)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--ttfb-ms", type=float, default=90)
    args = p.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "talky.settings")
    import django

    django.setup()
    from aioptions.bench import write

    res = asyncio.run(run(args.requests, args.ttfb_ms))
    for k, v in res.items():
        print(f"{k:18s} {v}")
    print("written to", write("preview", res))


if __name__ == "__main__":
    main()
