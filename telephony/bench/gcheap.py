"""What a full garbage collection costs a warmed bridge process, before and after the start-up heap
is frozen (telephony.metrics.gcpause, done by run_sip_bridge once ready).

    python -m telephony.bench.gcheap [--rounds 5]

Loads what a pipeline bridge loads before its first call (the runner's preload list and the
provider SDKs with their warm-up), counts the objects the collector tracks, then times full
collections (best and worst of ``--rounds``) with the heap as it is and after ``freeze_startup_heap``.
Writes var/bench/gcheap.json.
"""

from __future__ import annotations

import argparse
import gc
import os
import time

import django


def _warm_like_a_bridge() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "talky.settings")
    django.setup()
    from telephony.bridge.runner import _preload
    from telephony.metrics.runtime import _LAZY, _import_all

    _preload("pipeline")
    _import_all(["websockets.asyncio.client", "aioptions.providers.flux", "groq", "openai",
                 "aioptions.providers.llm", "cartesia", "aioptions.providers.cartesia_tts",
                 *[m for m in _LAZY if m.split(".")[0] in ("httpcore", "h11", "anyio")]])


def _full_collections_ms(rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        gc.collect()
        out.append(round((time.perf_counter() - t) * 1000.0, 2))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    if not 1 <= a.rounds <= 50:
        raise SystemExit("--rounds 1-50")
    _warm_like_a_bridge()
    from telephony.metrics.gcpause import freeze_startup_heap

    from . import write

    tracked = len(gc.get_objects())
    before = _full_collections_ms(a.rounds)
    frozen = freeze_startup_heap()
    after = _full_collections_ms(a.rounds)
    res = {"tracked_objects": tracked, "frozen_objects": frozen, "full_collection_ms": before,
           "full_collection_ms_after_freeze": after}
    print(f"{tracked} objects tracked after a pipeline bridge's start-up")
    print(f"full collection: best {min(before)} ms, worst {max(before)} ms")
    print(f"after freezing {frozen} objects: best {min(after)} ms, worst {max(after)} ms")
    print("written to", write("gcheap", res))


if __name__ == "__main__":
    main()
