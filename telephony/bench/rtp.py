"""N concurrent echo calls driven by sipp (uac_pcap) against one in-process gateway, on loopback in
a private network namespace. Reports CPU per call, RTP egress interval jitter, loss, RSS.

    python -m telephony.bench.rtp --calls 100 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from telephony.agents.echo import EchoAgent
from telephony.media.gateway import SIPMediaGateway
from telephony.sip.policy import SipPolicy, parse_networks

from . import pct, write
from .netns import ensure_netns

CALL_SECONDS = 9.0  # uac_pcap: 7 s of RTP plus pauses


async def run(calls: int, seconds: float, port: int = 5060) -> dict:
    sessions = []

    def factory(call):
        call.session.send_times = []
        sessions.append(call.session)
        return EchoAgent()

    gw = SIPMediaGateway(host="127.0.0.1", port=port, rtp_ports=(20000, 30000), agent_factory=factory,
                         max_calls=calls + 10, policy=SipPolicy(trusted=parse_networks("127.0.0.1")))  # one sipp
    await gw.start()
    work = Path(tempfile.mkdtemp(prefix="rtpbench-"))
    (work / "pcap").symlink_to("/usr/share/sip-tester")
    (work / "uac_pcap.xml").write_text(subprocess.run(["sipp", "-sd", "uac_pcap"], capture_output=True,
                                                      text=True).stdout)
    total = calls * max(1, math.ceil(seconds / CALL_SECONDS))
    proc_self = psutil.Process()
    rss0 = proc_self.memory_info().rss
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    sipp = await asyncio.create_subprocess_exec(
        "sipp", "-sf", "uac_pcap.xml", f"127.0.0.1:{port}", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", "5070",
        "-s", "100", "-users", str(calls), "-m", str(total), "-nostdin", "-trace_stat", "-stf", "stat.csv",
        cwd=work, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    peak, rss_peak = 0, rss0
    try:
        while sipp.returncode is None and time.monotonic() - t0 < seconds + 60:
            await asyncio.sleep(1.0)
            peak = max(peak, gw.active_calls)
            rss_peak = max(rss_peak, proc_self.memory_info().rss)
            print(f"  t={time.monotonic() - t0:5.1f}s calls={gw.active_calls:3d} ended={gw.stats['ended']}/{total}",
                  flush=True)
            try:
                await asyncio.wait_for(sipp.wait(), 0.01)
            except TimeoutError:
                pass
    finally:
        if sipp.returncode is None:
            sipp.kill()
            await sipp.wait()
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    await gw.aclose()
    deviations = []
    for s in sessions:
        times = s.send_times or []
        deviations += [abs((b - a) - 0.020) * 1000 for a, b in zip(times, times[1:], strict=False)]
    call_seconds = sum(len(s.send_times or []) * 0.02 for s in sessions)
    lost = sum(s.jitter.lost for s in sessions)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "calls_target": calls, "calls_peak": peak, "calls_total": total, "calls_answered": gw.stats["answered"],
        "sipp_rc": sipp.returncode, "wall_s": round(wall, 1), "cpu_s": round(cpu, 2),
        "cpu_pct_of_core_per_call": round(100 * cpu / call_seconds, 3) if call_seconds else None,
        "cpu_pct_of_core_total": round(100 * cpu / wall, 1),
        "egress_jitter_ms_p50": round(pct(deviations, 50) or 0, 3),
        "egress_jitter_ms_p99": round(pct(deviations, 99) or 0, 3),
        "egress_jitter_ms_max": round(max(deviations or [0]), 3), "packets_out": sum(len(s.send_times or [])
                                                                                       for s in sessions),
        "inbound_lost": lost, "clock": gw.clock.stats(), "rss_start_mb": round(rss0 / 2**20, 1),
        "rss_peak_mb": round(rss_peak / 2**20, 1),
        "rss_per_call_kb": round((rss_peak - rss0) / 1024 / max(peak, 1), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--seconds", type=float, default=30)
    args = p.parse_args()
    ensure_netns()
    print(f"RTP bench: {args.calls} concurrent echo calls for ~{args.seconds:.0f} s (sipp uac_pcap, loopback netns)")
    res = asyncio.run(run(args.calls, args.seconds))
    for k, v in res.items():
        print(f"{k:28s} {v}")
    print("written to", write(f"rtp_{args.calls}", res))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
