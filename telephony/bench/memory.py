"""Memory per pipeline call (issue 18 target: <= 0.5 MB a call): where a live call's bytes go, and
what an ended call leaves behind.

    python -m telephony.bench.memory [--calls 50] [--seconds 8] [--top 20]

N in-process pipeline calls (FakeCall, the real pipeline and provider clients) against the fake
providers in a separate process, as telephony.bench.pipeline runs them. After two warm-up calls
(imports, pools, caches), one round of N calls measures RSS before, while all N are live (each has
heard the greeting and had one turn, or --seconds passed) and after they ended; a second round
takes tracemalloc snapshots at the same three points (tracemalloc's own bookkeeping would inflate
the first round's RSS). The difference is
attributed to the most recent frame in this project's code that asked for it (a library's own
allocation is charged to our line that called it), so the table says which of our lines hold
memory. FakeCall's own records (every frame it sent, for tests) are the harness, not a call's
cost, and are reported apart. RSS before/live/after is printed beside it (it also sees native
buffers tracemalloc does not: OpenSSL, zlib). Bounded: the calls end after ``--seconds`` at most.
Writes var/bench/memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

from . import write
from .pipeline import ROOT, _django, _speech, _start_fakes

_OURS = tuple(str(ROOT / d) for d in ("telephony", "aioptions", "campaigns", "talky"))
_HARNESS = str(ROOT / "telephony" / "media" / "memcall.py")
_SELF = str(Path(__file__).resolve())


def _rss() -> int:
    for ln in Path("/proc/self/status").read_text().splitlines():
        if ln.startswith("VmRSS:"):
            return int(ln.split()[1]) * 1024
    return 0


def _where(tb: tracemalloc.Traceback) -> tuple[str, str]:
    """(our line that asked, the library file that allocated) for one traceback (most recent last)."""
    frames = list(tb)  # oldest first (Python 3.7+)
    ours = lib = ""
    for f in reversed(frames):  # most recent first
        if not lib:
            lib = f.filename.rsplit("site-packages/", 1)[-1].rsplit("/lib/python3", 1)[-1]
        if f.filename == _HARNESS:
            return "harness (FakeCall records)", lib
        if f.filename.startswith(_OURS) and f.filename != _SELF:
            ours = f"{f.filename[len(str(ROOT)) + 1:]}:{f.lineno}"
            break
    return ours or "elsewhere (no project frame)", lib


def attribute(after: tracemalloc.Snapshot, before: tracemalloc.Snapshot) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = defaultdict(int)
    for stat in after.compare_to(before, "traceback"):
        if stat.size_diff:
            out[_where(stat.traceback)] += stat.size_diff
    return out


async def _calls(n: int, speech: bytes, seconds: float) -> tuple[list, list]:
    from asgiref.sync import sync_to_async

    from campaigns.models import Campaign
    from telephony.media.memcall import SILENCE, FakeCall
    from telephony.models import Call
    from telephony.pipeline.agent import VoicePipelineAgent

    camp = await sync_to_async(Campaign.objects.first)()
    inbound = SILENCE * 150 + speech + SILENCE * 100
    calls, tasks = [], []
    for _ in range(n):
        row = await sync_to_async(Call.objects.create)(sip_call_id="membench", campaign=camp, codec="PCMU")
        call = FakeCall(inbound=inbound, record_id=row.pk, campaign_id=camp.pk, max_seconds=seconds + 30)
        calls.append(call)
        tasks.append(asyncio.create_task(VoicePipelineAgent(call).run(call)))
    return calls, tasks


def _replied(calls: list) -> int:
    """Calls whose agent spoke after the caller's sentence began (3 s of greeting time, 150 frames)."""
    return sum(1 for c in calls if any(agent for _, agent in c.sent[160:]))


async def _end(calls: list, tasks: list) -> None:
    for c in calls:
        c._end("bye")
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)


async def _round(n: int, speech: bytes, seconds: float, trace: bool) -> dict:
    """N calls up until each replied (at most ``seconds``), then ended; snapshots/RSS around them."""
    gc.collect()
    if trace:
        tracemalloc.start(12)
    snap = [tracemalloc.take_snapshot() if trace else None]
    rss = [_rss()]
    calls, tasks = await _calls(n, speech, seconds)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and _replied(calls) < n:
        await asyncio.sleep(0.5)
    gc.collect()
    snap.append(tracemalloc.take_snapshot() if trace else None)
    rss.append(_rss())
    replied = _replied(calls)
    await _end(calls, tasks)
    del calls, tasks
    await asyncio.sleep(2.0)  # background work after a call (summary, webhook) settles
    gc.collect()
    snap.append(tracemalloc.take_snapshot() if trace else None)
    rss.append(_rss())
    if trace:
        tracemalloc.stop()
    return {"replied": replied, "snap": snap, "rss": rss}


async def churn(n: int, seconds: float, speech: bytes, rounds: int) -> dict:
    """``rounds`` more rounds of N calls: RSS after each. Growth from the second to the last, per
    ended call, is what churn keeps (the first round after the traced one refills the allocator)."""
    after = []
    for _ in range(rounds):
        after.append((await _round(n, speech, seconds, trace=False))["rss"][2])
    kept = (after[-1] - after[0]) / (n * (rounds - 1)) if rounds > 1 else None
    return {"churn_rounds": rounds, "churn_rss_mb_after_each": [round(x / 2**20, 1) for x in after],
            "churn_kept_kb_per_ended_call": None if kept is None else round(kept / 1024, 1)}


async def measure(n: int, seconds: float, speech: bytes, rounds: int = 0) -> dict:
    await _round(2, speech, seconds, trace=False)  # warm-up: imports, pools, caches, clips
    plain = await _round(n, speech, seconds, trace=False)  # RSS without tracemalloc's own overhead
    traced = await _round(n, speech, seconds, trace=True)  # where the Python-level bytes go
    base, live, after = traced["snap"]
    by_live, by_after = attribute(live, base), attribute(after, base)
    harness = sum(v for (ours, _), v in by_live.items() if ours.startswith("harness"))
    total = sum(by_live.values())
    rss0, rss1, rss2 = plain["rss"]
    extra = await churn(n, seconds, speech, rounds) if rounds else {}
    return {**extra, "calls": n, "seconds": seconds, "calls_that_replied": [plain["replied"], traced["replied"]],
            "live_kb_per_call": round((total - harness) / n / 1024, 1),
            "harness_kb_per_call": round(harness / n / 1024, 1),
            "kept_kb_per_ended_call": round(sum(by_after.values()) / n / 1024, 1),
            "rss_mb": [round(x / 2**20, 1) for x in (rss0, rss1, rss2)],
            "rss_kb_per_call_live": round((rss1 - rss0) / n / 1024, 1),
            "rss_kb_per_call_after": round((rss2 - rss0) / n / 1024, 1),
            "live_top": sorted(([o, lib, round(v / n / 1024, 2)] for (o, lib), v in by_live.items()),
                               key=lambda r: -r[2]),
            "kept_top": sorted(([o, lib, round(v / n / 1024, 2)] for (o, lib), v in by_after.items()),
                               key=lambda r: -r[2])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0, help="at most this long for every call to reply")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--churn", type=int, default=0, help="then this many more rounds: RSS kept per ended call")
    args = ap.parse_args()
    n, seconds = max(1, min(args.calls, 200)), max(4.0, min(args.seconds, 60.0))
    work = Path(tempfile.mkdtemp(prefix="membench-"))
    _django(str(work))
    from django.conf import settings

    from campaigns.models import Campaign

    Campaign.objects.get_or_create(extension="100", defaults={"name": "Bench", "is_default": True,
                                                              "greeting": "Hello."})
    speech = _speech()
    proc, env = _start_fakes(work, 250.0, 300.0, 90.0, None)
    try:
        for k, v in env.items():
            setattr(settings, k, v)
        t0 = time.monotonic()
        res = asyncio.run(measure(n, seconds, speech, max(0, min(args.churn, 20))))
        res["wall_s"] = round(time.monotonic() - t0, 1)
    finally:
        proc.terminate()
        proc.wait(10)
    res["live_top"], res["kept_top"] = res["live_top"][:args.top], res["kept_top"][:args.top]
    print(f"{n} pipeline calls ({res['calls_that_replied']} replied): live {res['live_kb_per_call']} KB/call "
          f"traced (+{res['harness_kb_per_call']} KB FakeCall records), RSS {res['rss_kb_per_call_live']} KB/call; "
          f"after they ended {res['kept_kb_per_ended_call']} KB/call traced, RSS {res['rss_kb_per_call_after']} "
          f"KB/call; RSS MB before/live/after {res['rss_mb']}")
    if "churn_rounds" in res:
        print(f"churn: {res['churn_rounds']} more rounds of {n}, RSS MB after each {res['churn_rss_mb_after_each']}, "
              f"kept {res['churn_kept_kb_per_ended_call']} KB per ended call")
    for title, key in (("live, KB per call", "live_top"), ("kept after the end, KB per call", "kept_top")):
        print(f"  {title}:")
        for ours, lib, kb in res[key]:
            print(f"    {kb:8.2f}  {ours}  [{lib}]")
    print("written to", write("memory", res))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
