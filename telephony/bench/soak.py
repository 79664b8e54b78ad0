"""Soak and churn at the wire (issue 18): N concurrent pipeline calls for M minutes, each ended and
replaced by a new one, while the bridge's RSS, CPU and open files are sampled.

    python -m telephony.bench.soak [--calls 50] [--minutes 30] [--agent pipeline] [--hangup-after 8]

The same pieces as ``telephony.bench.wire``: a fresh ``run_sip_bridge`` on a private SQLite database,
the fake providers at fixed delays in their own process, our own load generator (no code shared with
the bridge). Each of the N slots places a call, says one sentence after the greeting, hangs up after
``--hangup-after`` seconds and places the next; a finished call is scored (the wire bench's rules:
added latency, late agent frames, failure) and forgotten, so the generator's memory stays flat too.

RSS growth is read from the warm point (``--warm-minutes`` in, when every slot has churned at least
once and first-use allocations are done) to the end, and as a least-squares slope over the samples
after it, in MB per 10 minutes. Bounded: the run ends at ``--minutes`` (plus one call's length), in
``unshare -n``. Prints a summary and writes var/bench/soak_wire.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import time
from pathlib import Path

from . import pct, write
from .netns import ensure_netns
from .wire import (
    FLUX_MIN_SILENCE_MS,
    GC_KEYS,
    SIP_PORT,
    _proc,
    _scrape,
    call_numbers,
    prepare,
    script,
    start_bridge,
    stop_bridge,
    utterance,
)
from .wire_uac import LoadGenerator

SAMPLE_S = 10.0


def _open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def slope_mb_per_10min(samples: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of RSS over time, in MB per 10 minutes (None with fewer than 3 samples)."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return None
    cov = sum((t - mt) * (r - mr) for t, r in samples)
    return cov / var * 600.0 / 2**20


async def soak(pid: int, agent: str, n: int, minutes: float, warm_minutes: float, rate: float,
               talk_after_s: float, hangup_s: float, fixed_ms: float) -> dict:
    gen = LoadGenerator(("127.0.0.1", SIP_PORT))
    await gen.open()
    await gen.wait_up()
    lines = script(utterance(), talk_after_s)
    stop = asyncio.Event()
    added: list[float] = []
    jitter: collections.deque[float] = collections.deque(maxlen=200_000)  # the most recent, bounded
    totals = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    samples: list[tuple[float, int, float, int]] = []  # (t, rss, cpu, open files)
    t0 = time.monotonic()
    end_at = t0 + minutes * 60.0
    counter = iter(range(10**9))

    async def sampler() -> None:
        while not stop.is_set():
            cpu, rss = _proc(pid)
            samples.append((time.monotonic() - t0, rss, cpu, _open_files(pid)))
            if len(samples) % max(1, int(60 / SAMPLE_S)) == 0:
                print(f"  t={samples[-1][0] / 60:5.1f} min  RSS {rss / 2**20:6.1f} MB  calls {totals['calls']}  "
                      f"failed {totals['failed']}  fds {samples[-1][3]}", flush=True)
            try:
                await asyncio.wait_for(stop.wait(), SAMPLE_S)
            except TimeoutError:
                pass

    async def one_call() -> None:
        c = gen.new_call(next(counter), lines)
        try:
            await gen.place(c, hangup_s)
            p = call_numbers(c, agent, fixed_ms)
            totals["calls"] += 1
            totals["late"] += p["late"]
            totals["agent_frames"] += p["agent_frames"]
            if p["failed"]:
                totals["failed"] += 1
                reasons[p["why"]] += 1
            if p["added_ms"] is not None:
                added.append(p["added_ms"])
            jitter.extend(p["devs"])
        finally:
            gen.retire(c)

    async def slot(i: int) -> None:
        await asyncio.sleep(i / rate)  # the first wave arrives at --rate, then each slot churns alone
        while time.monotonic() < end_at:
            await one_call()

    tasks = [asyncio.create_task(gen.pace(stop)), asyncio.create_task(sampler())]
    try:
        await asyncio.wait_for(asyncio.gather(*(slot(i) for i in range(n))), minutes * 60 + hangup_s + 60)
        scraped = await _scrape()
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        gen.close()
    wall = time.monotonic() - t0
    warm = [s for s in samples if s[0] >= warm_minutes * 60] or samples
    rss_warm, rss_end = warm[0][1], samples[-1][1]
    cpu = samples[-1][2] - samples[0][2]
    return {
        "agent": agent, "calls_concurrent": n, "minutes": round(wall / 60, 1), "calls": totals["calls"],
        "failed": totals["failed"], "failures": dict(reasons.most_common(5)),
        "added_ms_p50": pct(added, 50), "added_ms_p95": pct(added, 95), "added_ms_p99": pct(added, 99),
        "egress_jitter_ms_p99": pct(list(jitter), 99),
        "late_agent_frames_pct": round(100.0 * totals["late"] / totals["agent_frames"], 3)
        if totals["agent_frames"] else None,
        "rss_mb_start": round(samples[0][1] / 2**20, 1), "rss_mb_warm": round(rss_warm / 2**20, 1),
        "rss_mb_end": round(rss_end / 2**20, 1), "rss_mb_max": round(max(s[1] for s in samples) / 2**20, 1),
        "rss_growth_mb_after_warm": round((rss_end - rss_warm) / 2**20, 2),
        "rss_slope_mb_per_10min": (lambda v: None if v is None else round(v, 2))(
            slope_mb_per_10min([(s[0], s[1]) for s in warm])),
        "open_files_warm": warm[0][3], "open_files_end": samples[-1][3],
        "bridge_cpu_pct_per_call": round(100.0 * cpu / wall / n, 3) if wall else None,
        "bridge_metrics": {k: v for k, v in scraped.items() if any(s in k for s in (*GC_KEYS, "lag_window"))},
        "samples": [(round(t, 1), round(r / 2**20, 2)) for t, r, _, _ in samples],
    }


# the bridge's own waterfall, stage by stage: (name, from Turn field or None = end of speech, to field)
STAGES = (("end of speech -> EndOfTurn", None, "eot_received_ms"),
          ("EndOfTurn -> LLM request", "eot_received_ms", "llm_request_ms"),
          ("LLM request -> first token", "llm_request_ms", "llm_first_token_ms"),
          ("first token -> TTS request", "llm_first_token_ms", "tts_request_ms"),
          ("TTS request -> first audio", "tts_request_ms", "tts_first_audio_ms"),
          ("first audio -> first RTP", "tts_first_audio_ms", "first_rtp_ms"))


def turn_stages(db: Path) -> dict:
    """p50/p95/p99 of each stage from the bridge's Turn rows (its SQLite database, read-only): where
    the time between the caller's end of speech and the first reply packet went, by the bridge's
    own clock, so the fakes' fixed delays and the bridge's share can be told apart."""
    import sqlite3

    fields = sorted({f for _, a, b in STAGES for f in (a, b) if f})
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(f"SELECT {', '.join(fields)} FROM telephony_turn WHERE first_rtp_ms IS NOT NULL "
                           "AND llm_request_ms IS NOT NULL AND tts_request_ms IS NOT NULL").fetchall()
    finally:
        con.close()
    at = [dict(zip(fields, r, strict=True)) for r in rows]
    out = {"turns": len(at)}
    for name, a, b in STAGES:
        d = [t[b] - (t[a] if a else 0.0) for t in at if t[b] is not None and (a is None or t[a] is not None)]
        out[name] = [None if v is None else round(v, 1) for v in (pct(d, 50), pct(d, 95), pct(d, 99))]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--warm-minutes", type=float, default=2.0, help="RSS growth is counted from here")
    p.add_argument("--agent", default="pipeline")
    p.add_argument("--rate", type=float, default=20.0, help="calls set up per second in the first wave")
    p.add_argument("--eot-ms", type=float, default=50.0)
    p.add_argument("--ttft-ms", type=float, default=300.0)
    p.add_argument("--ttfb-ms", type=float, default=90.0)
    p.add_argument("--talk-after", type=float, default=2.5)
    p.add_argument("--hangup-after", type=float, default=8.0)
    p.add_argument("--event-loop", default="auto")
    args = p.parse_args()
    if not (1 <= args.calls <= 500 and 0 < args.minutes <= 240 and 0 <= args.warm_minutes < args.minutes):
        raise SystemExit("--calls 1-500, --minutes up to 240, --warm-minutes below --minutes")
    ensure_netns()
    env, work, fakes = prepare(args, max_seconds=args.minutes * 60 + 600)
    bridge, log = start_bridge(args.agent, args.calls, env, Path(work), args.event_loop)
    fixed = FLUX_MIN_SILENCE_MS + args.eot_ms + args.ttft_ms + args.ttfb_ms
    print(f"soak: {args.calls} {args.agent} calls for {args.minutes:g} min, churning every ~{args.hangup_after:g} s",
          flush=True)
    try:
        res = asyncio.run(soak(bridge.pid, args.agent, args.calls, args.minutes, args.warm_minutes, args.rate,
                               args.talk_after, args.hangup_after, fixed))
    finally:
        stop_bridge(bridge, log)
        fakes.terminate()
        fakes.wait(10)
    res["bridge_turn_stages_ms"] = turn_stages(Path(work) / "db.sqlite3")
    res = {k: round(v, 2) if isinstance(v, float) else v for k, v in res.items()}
    for k, v in res.items():
        if k != "samples":
            print(f"{k:28s} {v}")
    print("written to", write("soak_wire", res))


if __name__ == "__main__":
    main()
