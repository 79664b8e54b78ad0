"""Added latency of the voice pipeline at 1..N concurrent calls, against the fake providers at fixed
latencies running in a separate process (so their CPU is not ours).

added = first reply RTP packet - EndOfTurn arrival - fake LLM TTFT - fake TTS TTFB

Calls are in-process FakeCalls (a 20 ms paced CallHandle, no SIP) so this isolates the pipeline;
telephony.bench.rtp measures the SIP/RTP plane. python -m telephony.bench.pipeline --calls 1,10,50,100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _django(var_dir: str) -> None:
    os.environ["TALKY_VAR_DIR"] = var_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "talky.settings")
    for k in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(k, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _start_fakes(work: Path, eot_ms: float, ttft_ms: float, ttfb_ms: float, eager_lead_ms: float | None,
                 max_seconds: float = 600.0):
    env_file, log = work / "fakes.env", work / "fakes.json"
    env_file.unlink(missing_ok=True)  # a stale file would point at a previous (dead) fakes process
    cmd = [sys.executable, "-m", "aioptions.fakes.serve", "--env-file", str(env_file), "--log", str(log),
           "--eot-ms", str(eot_ms), "--ttft-ms", str(ttft_ms), "--ttfb-ms", str(ttfb_ms), "--tts-speedup", "4",
           "--max-seconds", str(int(max_seconds)), "--reply", "Sure, Tuesday at three works for you."]
    if eager_lead_ms is not None:
        cmd += ["--eager-lead-ms", str(eager_lead_ms)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if env_file.exists():
            break
        time.sleep(0.1)
    env = {}
    for line in env_file.read_text().splitlines():
        k, _, v = line.removeprefix("export ").partition("=")
        env[k] = shlex.split(v)[0] if v else ""
    return proc, env


async def _one_round(n: int, speech_audio: bytes, eager: bool) -> tuple[list[dict], float]:
    from asgiref.sync import sync_to_async

    from aioptions import services
    from campaigns.models import Campaign
    from telephony.media.memcall import SILENCE, FakeCall
    from telephony.metrics.runtime import warm_providers
    from telephony.models import Call
    from telephony.pipeline.agent import VoicePipelineAgent

    await warm_providers()  # as run_sip_bridge does at start: SDK imports, channel layer, TLS context
    await sync_to_async(services.update_turn)(eager_eot_threshold=0.5 if eager else None)
    camp = await sync_to_async(Campaign.objects.first)()
    inbound = SILENCE * 150 + speech_audio + SILENCE * 200  # speak after the greeting (3 s)
    calls, agents, tasks = [], [], []
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    for _ in range(n):
        row = await sync_to_async(Call.objects.create)(sip_call_id="bench", campaign=camp, codec="PCMU")
        call = FakeCall(inbound=inbound, record_id=row.pk, campaign_id=camp.pk, max_seconds=12)
        agent = VoicePipelineAgent(call)
        calls.append(call)
        agents.append(agent)
        tasks.append(asyncio.create_task(agent.run(call)))
    await asyncio.sleep(11)
    for c in calls:
        c._end("bye")
    await asyncio.gather(*tasks, return_exceptions=True)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return [t for a in agents for t in a.state.turns], cpu / (time.monotonic() - t0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", default="1,10,50,100")
    p.add_argument("--eot-ms", type=float, default=250)
    p.add_argument("--ttft-ms", type=float, default=300)
    p.add_argument("--ttfb-ms", type=float, default=90)
    p.add_argument("--eager", action="store_true", help="also measure with eager end-of-turn")
    p.add_argument("--mode", choices=["plain", "eager"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mode is None:  # each mode in a fresh process, so one round's state cannot leak into the next
        import json

        from . import write

        merged: dict = {"fake_latencies_ms": {"eot": args.eot_ms, "ttft": args.ttft_ms, "ttfb": args.ttfb_ms},
                        "rounds": []}
        for mode in (["plain", "eager"] if args.eager else ["plain"]):
            out = Path(tempfile.mkdtemp(prefix="pipebench-")) / "out.json"
            subprocess.run([sys.executable, "-m", "telephony.bench.pipeline", "--mode", mode, "--calls", args.calls,
                            "--eot-ms", str(args.eot_ms), "--ttft-ms", str(args.ttft_ms), "--ttfb-ms",
                            str(args.ttfb_ms)], cwd=ROOT, check=True, env={**os.environ, "PIPEBENCH_OUT": str(out)})
            merged["rounds"] += json.loads(out.read_text())["rounds"]
        print("written to", write("pipeline", merged))
        return
    work = Path(tempfile.mkdtemp(prefix="pipebench-"))
    _django(str(work))
    run_all([int(x) for x in args.calls.split(",")], args.eot_ms, args.ttft_ms, args.ttfb_ms, args.mode == "eager",
            work)


def _speech() -> bytes:
    from aioptions.codecs import g711
    from aioptions.codecs.resample import resample

    raw = subprocess.run(["espeak-ng", "--stdout", "I would like to book an appointment"], capture_output=True,
                         check=True).stdout
    import numpy as np

    pcm = np.frombuffer(raw[44:], dtype="<i2")
    return g711.ulaw_encode(resample(pcm, 22050, 8000))


def run_all(counts: list[int], eot_ms: float, ttft_ms: float, ttfb_ms: float, eager: bool, work: Path) -> dict:
    from django.conf import settings

    from campaigns.models import Campaign

    from . import pct, write

    Campaign.objects.get_or_create(extension="100", defaults={"name": "Bench", "is_default": True,
                                                              "greeting": "Hello."})
    speech = _speech()
    results: dict = {"fake_latencies_ms": {"eot": eot_ms, "ttft": ttft_ms, "ttfb": ttfb_ms}, "rounds": []}
    modes = [eager]
    for use_eager in modes:
        # eager: EagerEndOfTurn arrives TTFT + 100 ms before EndOfTurn (so the LLM's time can be hidden)
        round_eot = max(eot_ms, ttft_ms + 150) if use_eager else eot_ms
        proc, env = _start_fakes(work, round_eot, ttft_ms, ttfb_ms, ttft_ms + 100 if use_eager else None)
        try:
            for k, v in env.items():
                setattr(settings, k, v)
            for n in counts:
                print(f"pipeline bench: {n} concurrent call(s){' with eager EOT' if use_eager else ''} ...", flush=True)
                turns, cpu_frac = asyncio.run(_one_round(n, speech, use_eager))
                done = [t for t in turns if t["first_rtp_ms"] is not None and t["eot_received_ms"] is not None]
                added = [t["first_rtp_ms"] - t["eot_received_ms"] - ttft_ms - ttfb_ms for t in done]
                after_eot = [t["first_rtp_ms"] - t["eot_received_ms"] for t in done]
                row = {"calls": n, "eager": use_eager, "turns": len(done),
                       "added_ms_p50": pct(added, 50), "added_ms_p95": pct(added, 95), "added_ms_p99": pct(added, 99),
                       "reply_after_eot_ms_p50": pct(after_eot, 50), "reply_after_eot_ms_p95": pct(after_eot, 95),
                       "mouth_to_ear_ms_p50": pct([t["mouth_to_ear_ms"] for t in done], 50),
                       "eager_hits": sum(1 for t in done if t["eager"] == "hit"),
                       "cpu_pct_of_core": round(100 * cpu_frac, 1)}
                row = {k: round(float(v), 1) if isinstance(v, float) else v for k, v in row.items()}
                row["fake_eot_ms"] = round_eot
                print("  ", row, flush=True)
                results["rounds"].append(row)
        finally:
            proc.terminate()
            proc.wait(10)
    import json

    Path(os.environ.get("PIPEBENCH_OUT") or write("pipeline", results)).write_text(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
