"""Latency at the wire under load (issue 18): what a caller hears, measured outside the bridge.

    python -m telephony.bench.wire [--calls 10,50,100] [--agents pipeline,echo] [--rate 20]

Each round starts a fresh ``run_sip_bridge --agent A --trusted 127.0.0.1`` (one load generator on one
address must be exempt from the per-source limits) against the fake providers (aioptions/fakes, a separate
process, fixed delays), and our own load generator (``wire_uac``: no code shared with the bridge)
places N calls at ``--rate`` calls/s. Each caller stays silent while the greeting plays, says one
pre-recorded mu-law utterance (espeak-ng through sox), listens, and hangs up.

- added (pipeline) = first reply packet (kernel receive time) - end of the caller's speech (send time
  of its last loud frame) - the fakes' fixed delays: Flux ends the turn 350 ms of audio silence + --eot-ms
  after speech, the LLM's first token --ttft-ms, the TTS's first audio --ttfb-ms (50+350, 300, 90 = 790 ms).
- added (echo, the floor) = first echoed loud packet - first loud packet sent - the echo agent's own
  500 ms delay: the bridge's media path alone (jitter buffer, tick, egress).
- egress jitter = |interarrival - 20 ms| of consecutive packets, every packet of every call.
- late agent frames = agent-audio packets that came after a caller with a 40 ms jitter buffer (which
  re-primes on an underrun) needed them: each one is an audible gap.
- failed = not answered, ended by the bridge, BYE not answered 200, or (pipeline) no reply heard.
- bridge CPU per call = CPU seconds of the bridge over the round / wall time / N; RSS = peak VmRSS.

Bounded (every wait has a timeout, each round ends by itself), runs inside ``unshare -n`` (only lo).
Prints a table and writes var/bench/wire.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import OUT_DIR, interrupt, pct, write
from .netns import ensure_netns
from .pipeline import ROOT, _start_fakes
from .stalls import start_py_spy, stop_py_spy
from .wire_uac import FRAME_NS, LoadGenerator, WireCall, is_loud

SIP_PORT, METRICS_PORT = 5080, 9101
UTTERANCE = "I would like to book an appointment for Tuesday"
FLUX_MIN_SILENCE_MS = 350.0  # aioptions.fakes.flux_server: EndOfTurn after this much silent audio + eot delay
CALLER_BUFFER_NS = 40_000_000
ECHO_DELAY_MS = 500.0  # telephony.agents.echo plays the caller back this much later, on purpose


def utterance() -> bytes:
    """The caller's sentence as raw mu-law 8 kHz, trailing quiet trimmed (cached under var/bench/)."""
    path = OUT_DIR / "wire_utterance.ulaw"
    if not path.exists():
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        wav = subprocess.run(["espeak-ng", "--stdout", UTTERANCE], capture_output=True, check=True, timeout=30).stdout
        raw = subprocess.run(["sox", "-t", "wav", "-", "-t", "raw", "-r", "8000", "-e", "u-law", "-c", "1", "-"],
                             input=wav, capture_output=True, check=True, timeout=30).stdout
        path.write_bytes(raw)
    raw = path.read_bytes()
    frames = [raw[i:i + 160] for i in range(0, len(raw) - 159, 160)]
    loud = [i for i, f in enumerate(frames) if is_loud(f)]
    return b"".join(frames[loud[0]:loud[-1] + 1])


def script(speech: bytes, talk_after_s: float) -> list[bytes]:
    silence = b"\xff" * 160
    return [silence] * int(talk_after_s * 50) + [speech[i:i + 160] for i in range(0, len(speech), 160)]


def _proc(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith("VmRSS:"):
            rss = int(ln.split()[1]) * 1024
    return cpu, rss


# the bridge's collections by generation and the full ones that stopped it for over 50 ms (gcpause.py)
GC_KEYS = ("gc_pause_seconds_count", "gc_pause_seconds_sum", 'gc_pause_seconds_bucket{generation="2",le="0.05"}')


async def _scrape() -> dict[str, float]:
    """A few values from the bridge's own /metrics (a cross-check, not the measurement)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", METRICS_PORT), 2)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: b\r\n\r\n")
        body = (await asyncio.wait_for(reader.read(), 5)).decode().partition("\r\n\r\n")[2]
        writer.close()
    except (OSError, TimeoutError):
        return {}
    out = {}
    for ln in body.splitlines():
        if ln.startswith("talky_") and " " in ln:
            k, v = ln.rsplit(" ", 1)
            out[k] = float(v)
    return out


def call_numbers(c: WireCall, agent: str, fixed_ms: float) -> dict:
    rx = sorted(c.rx)
    devs = [abs((b[0] - a[0]) - FRAME_NS) / 1e6 for a, b in zip(rx, rx[1:], strict=False)
            if (b[1] - a[1]) & 0xFFFF == 1]
    if agent == "echo":
        ref = c.speech_start_ns
        reply = next((r[0] for r in rx if r[4] and r[0] > ref), None) if ref else None
        added = None if reply is None else (reply - ref) / 1e6 - ECHO_DELAY_MS
    else:
        ref = c.speech_end_ns
        reply = next((r[0] for r in rx if r[4] and r[0] > ref), None) if ref else None
        added = None if reply is None else (reply - ref) / 1e6 - fixed_ms
    late = agent_frames = 0
    play = None
    for t, _seq, _ts, marker, loud in rx:  # a caller with a 40 ms buffer that re-primes when it runs dry
        if not loud:
            play = None
            continue
        agent_frames += 1
        if play is None or marker:
            play = t + CALLER_BUFFER_NS
            continue
        due = play + FRAME_NS
        if t > due:
            late += 1
            play = t + CALLER_BUFFER_NS
        else:
            play = due
    failed = (c.status != 200 or c.ended_by_bridge or c.bye_status != 200 or added is None)
    return {"added_ms": added, "devs": devs, "late": late, "agent_frames": agent_frames, "failed": failed,
            "why": (f"status {c.status}" if c.status != 200 else "ended by bridge" if c.ended_by_bridge
                    else "no reply" if added is None else f"BYE {c.bye_status}" if c.bye_status != 200 else "")}


async def drive(pid: int, agent: str, n: int, rate: float, talk_after_s: float, hangup_s: float,
                fixed_ms: float, profile: Path | None = None, fakes_pid: int | None = None) -> dict:
    gen = LoadGenerator(("127.0.0.1", SIP_PORT))
    await gen.open()
    spy = None
    try:
        await gen.wait_up()
        await asyncio.sleep(1.0)  # let start-up work settle before measuring
        spy = start_py_spy(pid, profile) if profile else None  # what blocks the loop: telephony.bench.stalls
        cpu0, rss0 = _proc(pid)
        # the fakes and this load generator share the machine: if either is saturated, replies are
        # late for reasons that are not the bridge's, so their CPU is reported beside it
        fakes0, gen0 = _proc(fakes_pid)[0] if fakes_pid else 0.0, time.process_time()
        peak = [rss0]
        lines = script(utterance(), talk_after_s)
        stop = asyncio.Event()

        async def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _proc(pid)[1])
                await asyncio.sleep(0.25)

        async def one(i: int) -> None:
            await gen.place(gen.new_call(i, lines), hangup_s)

        tasks = [asyncio.create_task(gen.pace(stop)), asyncio.create_task(sample())]
        t_start = time.monotonic()
        calls = []
        for i in range(n):
            calls.append(asyncio.create_task(one(i)))
            await asyncio.sleep(max(0.0, t_start + (i + 1) / rate - time.monotonic()))
        await asyncio.wait_for(asyncio.gather(*calls), n / rate + hangup_s + 30)
        wall = time.monotonic() - t_start
        cpu1, _ = _proc(pid)
        fakes1, gen1 = _proc(fakes_pid)[0] if fakes_pid else 0.0, time.process_time()
        scraped = await _scrape()
        stop.set()
        for t in tasks:
            t.cancel()
    finally:
        gen.close()
        stop_py_spy(spy)
    per = [call_numbers(c, agent, fixed_ms) for c in gen.calls.values()]
    added = [p["added_ms"] for p in per if p["added_ms"] is not None]
    devs = [d for p in per for d in p["devs"]]
    frames = sum(p["agent_frames"] for p in per)
    late = sum(p["late"] for p in per)
    r = {"agent": agent, "calls": n, "answered": sum(1 for c in gen.calls.values() if c.status == 200),
         "failed": sum(1 for p in per if p["failed"]),
         "failures": sorted({p["why"] for p in per if p["failed"]}),
         "added_ms_p50": pct(added, 50), "added_ms_p95": pct(added, 95), "added_ms_p99": pct(added, 99),
         "egress_jitter_ms_p50": pct(devs, 50), "egress_jitter_ms_p99": pct(devs, 99),
         "late_agent_frames": late, "agent_frames": frames,
         "late_agent_frames_pct": round(100.0 * late / frames, 3) if frames else None,
         "bridge_cpu_pct_per_call": round(100.0 * (cpu1 - cpu0) / wall / n, 3),
         "fakes_cpu_pct": round(100.0 * (fakes1 - fakes0) / wall, 1),
         "loadgen_cpu_pct": round(100.0 * (gen1 - gen0) / wall, 1),
         "rss_mb_idle": round(rss0 / 2**20, 1), "rss_mb_peak": round(peak[0] / 2**20, 1),
         "rss_kb_per_call": round((peak[0] - rss0) / 1024 / n, 1), "wall_s": round(wall, 1),
         "bridge_metrics": {k: v for k, v in scraped.items() if any(s in k for s in (
             "deferred", "late_ticks", "skipped", "lost_frames", "lag_window", "calls_started", *GC_KEYS))}}
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}


def start_bridge(agent: str, n: int, env: dict, work: Path, event_loop: str = "auto"):
    """``run_sip_bridge`` for one round, logging to the work directory; stop it with ``stop_bridge``."""
    log = open(work / f"bridge-{agent}-{n}-{event_loop}.log", "wb")  # noqa: SIM115 - closed in stop_bridge
    cmd = [sys.executable, "manage.py", "run_sip_bridge", "--agent", agent, "--trusted", "127.0.0.1",
           "--port", str(SIP_PORT), "--rtp-ports", "20000-29999", "--max-calls", str(max(200, 2 * n)),
           "--metrics-port", str(METRICS_PORT), "--event-loop", event_loop]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log


def stop_bridge(bridge: subprocess.Popen, log) -> None:
    interrupt(bridge)
    log.close()


def run_round(agent: str, n: int, args, env: dict, work: Path, event_loop: str = "auto") -> dict:
    bridge, log = start_bridge(agent, n, env, work, event_loop)
    fixed = FLUX_MIN_SILENCE_MS + args.eot_ms + args.ttft_ms + args.ttfb_ms
    profile = OUT_DIR / f"wire-profile-{agent}-{n}.json" if args.profile else None
    try:
        row = asyncio.run(drive(bridge.pid, agent, n, args.rate, args.talk_after, args.hangup_after, fixed,
                                profile, getattr(args, "fakes_pid", None)))
        return {"event_loop": event_loop, **row}
    finally:
        stop_bridge(bridge, log)


def prepare(args, max_seconds: float = 600.0) -> tuple[dict, Path, subprocess.Popen]:
    """A private SQLite database with one campaign, and the fake providers (their own process) at the
    bench's fixed delays: the bridge's environment, its work directory, the fakes' process."""
    work = Path(tempfile.mkdtemp(prefix="wirebench-"))
    env = {**os.environ, "TALKY_VAR_DIR": str(work), "PYTHONUNBUFFERED": "1"}
    for k in ("DATABASE_URL", "REDIS_URL"):
        env.pop(k, None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
    subprocess.run([sys.executable, "manage.py", "shell", "-c",
                    "from campaigns.models import Campaign; Campaign.objects.get_or_create(extension='100', "
                    "defaults={'name': 'Bench', 'is_default': True, 'greeting': 'Hello.'})"],
                   cwd=ROOT, env=env, check=True, timeout=120)
    fakes, fake_env = _start_fakes(work, args.eot_ms, args.ttft_ms, args.ttfb_ms, None, max_seconds)
    env.update(fake_env)
    return env, work, fakes


def table(rows: list[dict], fixed: float) -> str:
    out = ["| agent | calls | added p50 / p95 / p99 (ms) | egress jitter p99 (ms) | late agent frames | failed "
           "| bridge CPU per call | RSS peak (idle) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = "echo (floor)" if r["agent"] == "echo" else r["agent"]
        if r.get("event_loop", "auto") != "auto":
            name += f" [{r['event_loop']}]"
        out.append(f"| {name} | {r['calls']} | {r['added_ms_p50']} / {r['added_ms_p95']} / {r['added_ms_p99']} "
                   f"| {r['egress_jitter_ms_p99']} | {r['late_agent_frames']} ({r['late_agent_frames_pct']} %) "
                   f"| {r['failed']} | {r['bridge_cpu_pct_per_call']} % | {r['rss_mb_peak']} ({r['rss_mb_idle']}) MB |")
    out.append(f"\nPipeline added = reply - end of speech - {fixed:.0f} ms of fixed fake delays; echo added = "
               f"echoed speech - speech sent - {ECHO_DELAY_MS:.0f} ms.")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", default="10,50,100")
    p.add_argument("--agents", default="pipeline,echo")
    p.add_argument("--rate", type=float, default=20.0, help="calls set up per second")
    p.add_argument("--eot-ms", type=float, default=50.0, help="fake Flux delay after its 350 ms silence rule")
    p.add_argument("--ttft-ms", type=float, default=300.0)
    p.add_argument("--ttfb-ms", type=float, default=90.0)
    p.add_argument("--talk-after", type=float, default=2.5, help="seconds of silence (greeting) before speaking")
    p.add_argument("--hangup-after", type=float, default=8.0, help="seconds from answer to BYE")
    p.add_argument("--nice", type=int, default=0,
                   help="run the bench, fakes and bridge at this nice level (e.g. -10 on a shared machine; root)")
    p.add_argument("--event-loops", default="auto",
                   help="comma list of the bridge's --event-loop to compare (auto, uvloop, asyncio)")
    p.add_argument("--profile", action="store_true",
                   help="py-spy the bridge (var/bench/wire-profile-*.json; read with telephony.bench.stalls)")
    args = p.parse_args()
    ensure_netns()
    if args.nice:  # on a shared box: measure the bridge, not the neighbours' load; children inherit it
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    env, work, fakes = prepare(args)
    args.fakes_pid = fakes.pid
    rows = []
    fixed = FLUX_MIN_SILENCE_MS + args.eot_ms + args.ttft_ms + args.ttfb_ms
    try:
        for agent in args.agents.split(","):
            for n in (int(x) for x in args.calls.split(",")):
                for loop in args.event_loops.split(","):
                    print(f"wire bench: {agent}, {n} calls, {loop} loop ...", flush=True)
                    row = run_round(agent, n, args, env, work, loop)
                    print("  ", row, flush=True)
                    rows.append(row)
    finally:
        fakes.terminate()
        fakes.wait(10)
    print()
    print(table(rows, fixed))
    print("written to", write("wire", {"fixed_delay_ms": fixed, "rate_calls_per_s": args.rate,
                                       "python": sys.version.split()[0], "cpus": os.cpu_count(), "rounds": rows}))


if __name__ == "__main__":
    main()
