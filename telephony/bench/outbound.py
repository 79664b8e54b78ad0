"""Outbound load: N calls placed at R calls/s by one in-process gateway (the UAC) into a sipp UAS
that answers, echoes RTP and hangs up after a hold time; loopback in a private network namespace.
Reports pacing error (INVITE sent vs schedule), setup time (first INVITE -> 200 OK), CPU per call,
outcomes and sipp's exit code.

    python -m telephony.bench.outbound --calls 100 --cps 10 --hold 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import tempfile
from pathlib import Path

from telephony.agents.echo import EchoAgent
from telephony.media.gateway import SIPMediaGateway
from telephony.sip.policy import SipPolicy, parse_networks
from telephony.sip.uac import OutboundTarget

from . import pct, write
from .netns import ensure_netns

SIPP_PORT = 5090
HEAD = "[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]b[call_number]\n[last_Call-ID:]\n[last_CSeq:]\n"
SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench carrier">
<recv request="INVITE"/>
<send><![CDATA[
SIP/2.0 180 Ringing
{head}Contact: <sip:carrier@[local_ip]:[local_port]>
Content-Length: 0

]]></send>
<send retrans="500"><![CDATA[
SIP/2.0 200 OK
{head}Contact: <sip:carrier@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=carrier 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
<recv request="ACK"/>
<pause milliseconds="{hold_ms}"/>
<send retrans="500"><![CDATA[
BYE sip:talky@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [last_To:]
To: [last_From:]
[last_Call-ID:]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="200"/>
</scenario>
"""


async def run(calls: int, cps: float, hold_s: float) -> dict:
    gw = SIPMediaGateway(host="127.0.0.1", port=0, rtp_ports=(20000, 30000), agent_factory=lambda c: EchoAgent(),
                         max_calls=calls + 10, policy=SipPolicy(trusted=parse_networks("127.0.0.1")))
    await gw.start()
    work = Path(tempfile.mkdtemp(prefix="outbench-"))
    (work / "uas.xml").write_text(SCENARIO.format(head=HEAD, hold_ms=int(hold_s * 1000)))
    sipp = await asyncio.create_subprocess_exec(
        "sipp", "-sf", "uas.xml", "-i", "127.0.0.1", "-p", str(SIPP_PORT), "-mi", "127.0.0.1", "-mp", "6100",
        "-rtp_echo", "-m", str(calls), "-nostdin", "-timeout", f"{int(calls / cps + hold_s + 60)}s", cwd=work,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await asyncio.sleep(0.5)  # sipp binds its port (a benchmark, not a test)
    loop = asyncio.get_running_loop()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = loop.time() + 0.2
    lateness: list[float] = []

    async def one(i: int):
        scheduled = t0 + i / cps
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        sent: list[float] = []

        def step(text: str) -> None:
            if text.startswith("-> INVITE") and not sent:
                sent.append(loop.time())

        target = OutboundTarget(request_uri=f"sip:+1201555{i:04d}@127.0.0.1:{SIPP_PORT}",
                                dest=("127.0.0.1", SIPP_PORT), from_user="+12015550000")
        result = await gw.dial(target, ring_timeout_s=30, on_step=step)
        if sent:
            lateness.append((sent[0] - scheduled) * 1000)
        return result

    results = await asyncio.gather(*(one(i) for i in range(calls)))
    peak = gw.active_calls
    try:
        await asyncio.wait_for(sipp.wait(), hold_s + 60)
    except TimeoutError:
        sipp.kill()
        await sipp.wait()
    while gw.active_calls:
        await asyncio.sleep(0.1)
    wall = loop.time() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    await gw.aclose()
    shutil.rmtree(work, ignore_errors=True)
    setups = [r.setup_ms for r in results if r.setup_ms is not None]
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    answered_s = outcomes.get("answered", 0) * hold_s
    return {
        "calls": calls, "cps": cps, "hold_s": hold_s, "outcomes": outcomes,
        "failed": calls - outcomes.get("answered", 0), "sipp_rc": sipp.returncode, "peak_concurrent": peak,
        "pacing_error_ms_p50": round(pct([abs(x) for x in lateness], 50) or 0, 2),
        "pacing_error_ms_p95": round(pct([abs(x) for x in lateness], 95) or 0, 2),
        "pacing_error_ms_max": round(max([abs(x) for x in lateness] or [0]), 2),
        "setup_ms_p50": pct(setups, 50), "setup_ms_p95": pct(setups, 95), "setup_ms_max": max(setups or [0]),
        "wall_s": round(wall, 1), "cpu_s": round(cpu, 2),
        "cpu_pct_of_core_per_call": round(100 * cpu / answered_s, 3) if answered_s else None,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--cps", type=float, default=10.0)
    p.add_argument("--hold", type=float, default=10.0, help="seconds each answered call stays up")
    args = p.parse_args()
    if shutil.which("sipp") is None:
        raise SystemExit("needs sipp (Debian package sip-tester)")
    ensure_netns()
    print(f"Outbound bench: {args.calls} calls at {args.cps:g}/s into a sipp UAS, {args.hold:g} s each")
    res = asyncio.run(run(args.calls, args.cps, args.hold))
    for k, v in res.items():
        print(f"{k:28s} {v}")
    print("written to", write(f"outbound_{args.calls}", res))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
