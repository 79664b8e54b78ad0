"""What the network hardening (issue 11) costs per packet, before vs after, in one run.

    python -m telephony.bench.hardening [--before fed83bf] [--rtp-cpu-per-call 0.183]

"Before" is the code as it was at the given commit (loaded from git into this process, next to
today's modules, so both run on the same interpreter, machine and moment); "after" is today's.
Also: the memory the gateway keeps after 30,000 distinct REGISTERs from as many addresses.
Measured (best of 5 rounds, ns per packet):
  * RTP: ``RtpSession.datagram_received`` on a latched call (the per-packet path) with a valid
    payload, and a stranger's packet (the new source check drops it before parsing);
  * SIP: ``parse`` of a REGISTER and of an INVITE with SDP, and the whole front door for an
    OPTIONS (budget, scanner check, parse, response, transaction cache) after.
The RTP overhead is then put against the RTP echo CPU per call (from var/bench/rtp_100.json when
present, else --rtp-cpu-per-call): 50 inbound packets/s per call x the extra ns = the share of
that call's CPU the checks add (issue 11 allows at most 5 %).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
import types
from pathlib import Path

from telephony.rtp.clock import MediaClock
from telephony.rtp.packet import build_rtp
from telephony.rtp.session import RtpSession
from telephony.sip import message

from . import OUT_DIR, write

ROOT = Path(__file__).resolve().parents[2]
REGISTER = (b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK77;rport\r\n"
            b"Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:alice@127.0.0.1>\r\n"
            b"Call-ID: 4f1c2e@192.0.2.10\r\nCSeq: 7 REGISTER\r\nContact: <sip:alice@192.0.2.10:5062;ob>\r\n"
            b"Expires: 300\r\nUser-Agent: baresip v1.0.0\r\nContent-Length: 0\r\n\r\n")
SDP = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
       b"m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")
INVITE = (REGISTER.replace(b"REGISTER sip:127.0.0.1", b"INVITE sip:100@127.0.0.1").replace(b"7 REGISTER",
          b"1 INVITE").replace(b"Expires: 300\r\n", b"Content-Type: application/sdp\r\n")
          .replace(b"Content-Length: 0", f"Content-Length: {len(SDP)}".encode()) + SDP)


# modules that moved since the "before" commit (3673859: G.711 to the lowest layer): old name -> today's
MOVED = {"telephony.codecs": "aioptions.codecs", "telephony.codecs.g711": "aioptions.codecs.g711"}


def _load_before(commit: str, rel: str, name: str, package: str) -> types.ModuleType | None:
    """Today's package, with one module replaced by its text at ``commit`` under another name."""
    try:
        src = subprocess.run(["git", "show", f"{commit}:{rel}"], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    spec = importlib.util.spec_from_loader(f"{package}.{name}", loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = package
    sys.modules[spec.name] = mod
    added = [old for old, new in MOVED.items() if old not in sys.modules]
    for old in added:  # the old text imports modules from where they were then
        sys.modules[old] = importlib.import_module(MOVED[old])
    try:
        exec(compile(src, f"{commit}:{rel}", "exec"), mod.__dict__)  # noqa: S102 - our own file from our own git
    finally:
        for old in added:
            del sys.modules[old]
    return mod


def _best_ns(fn, n: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - t) / n)
    return round(best, 1)


def _rtp_cost(cls, n: int, stranger: bool, **kw) -> float:
    s = cls(payload_type=0, codec="PCMU", remote=("192.0.2.10", 4000), clock=MediaClock(), **kw)
    peer = ("192.0.2.10", 4000)
    s.datagram_received(build_rtp(0, 1, 0, 5, False, b"\xff" * 160), peer)  # latch
    pkts = [build_rtp(0, 2 + i, 160 * (2 + i), 5, False, b"\xff" * 160) for i in range(256)]
    src = ("198.51.100.1", 4000) if stranger else peer

    def run(k: int) -> None:
        dr = s.datagram_received
        for i in range(k):
            dr(pkts[i & 255], src)
            if i & 255 == 255:
                s.jitter.reset()
    return _best_ns(run, n)


def _sip_front_door(n: int) -> float:
    from telephony.media.gateway import SIPMediaGateway
    from telephony.sip.policy import SipPolicy, parse_networks

    gw = SIPMediaGateway(agent_factory=lambda c: None, policy=SipPolicy(trusted=parse_networks("192.0.2.0/24")))
    gw.transport.sendto = lambda data, addr: None
    msgs = [REGISTER.replace(b"REGISTER sip:127.0.0.1", b"OPTIONS sip:127.0.0.1").replace(b"7 REGISTER",
            b"7 OPTIONS").replace(b"z9hG4bK77", f"z9hG4bK{i}".encode()) for i in range(512)]

    def run(k: int) -> None:
        for i in range(k):
            gw._on_datagram(msgs[i & 511], ("192.0.2.10", 5062), "127.0.0.1")
    return _best_ns(run, n)


def _register_storm_memory(n: int = 30_000) -> dict:
    """Memory the gateway keeps after n distinct REGISTERs from n source addresses (tracemalloc)."""
    import tracemalloc

    from telephony.media.gateway import SIPMediaGateway

    now = [1000.0]
    gw = SIPMediaGateway(agent_factory=lambda c: None, clock=lambda: now[0])
    gw.transport.sendto = lambda data, addr: None
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    for i in range(n):
        ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        raw = (REGISTER.replace(b"192.0.2.10:5062", f"{ip}:{1024 + i % 60000}".encode())
               .replace(b"alice", f"u{i}".encode()).replace(b"4f1c2e", f"c{i}".encode()))
        gw._on_datagram(raw, (ip, 1024 + i % 60000), "127.0.0.1")
        now[0] += 0.001
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename"))
    tracemalloc.stop()
    return {"registers": n, "bindings": len(gw.registrar), "transactions": len(gw.responses),
            "sources_tracked": gw.pike.tracked(), "kept_mb": round(grown / 1e6, 2)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--before", default="fed83bf", help="commit before the hardening")
    p.add_argument("--rtp-cpu-per-call", type=float, default=0.183, help="%% of a core per echo call, if no "
                   "var/bench/rtp_100.json")
    p.add_argument("--packets", type=int, default=200_000)
    a = p.parse_args()
    old_session = _load_before(a.before, "telephony/rtp/session.py", "_session_before", "telephony.rtp")
    old_message = _load_before(a.before, "telephony/sip/message.py", "_message_before", "telephony.sip")
    n = a.packets
    result: dict = {"before": a.before, "packets": n, "ns_per_packet": {}}
    ns = result["ns_per_packet"]
    ns["rtp_valid_after"] = _rtp_cost(RtpSession, n, False, signal_ip="192.0.2.10")
    ns["rtp_stranger_after"] = _rtp_cost(RtpSession, n, True, signal_ip="192.0.2.10")
    if old_session is not None:
        ns["rtp_valid_before"] = _rtp_cost(old_session.RtpSession, n, False)
        ns["rtp_stranger_before"] = _rtp_cost(old_session.RtpSession, n, True)
    for name, raw in (("register", REGISTER), ("invite", INVITE)):
        ns[f"sip_parse_{name}_after"] = _best_ns(lambda k, r=raw: [message.parse(r) for _ in range(k)], n // 20)
        if old_message is not None:
            ns[f"sip_parse_{name}_before"] = _best_ns(lambda k, r=raw: [old_message.parse(r) for _ in range(k)],
                                                      n // 20)
    ns["sip_options_front_door_after"] = _sip_front_door(n // 20)
    result["register_storm"] = _register_storm_memory()
    cpu = a.rtp_cpu_per_call
    rtp100 = OUT_DIR / "rtp_100.json"
    if rtp100.exists():
        try:
            cpu = float(json.loads(rtp100.read_text()).get("cpu_pct_of_core_per_call") or cpu)
        except (ValueError, TypeError):
            pass
    if "rtp_valid_before" in ns:
        extra_ns = ns["rtp_valid_after"] - ns["rtp_valid_before"]
        call_ns_per_s = cpu / 100 * 1e9  # CPU time one echo call uses per second
        result["rtp_overhead_pct_of_echo_call_cpu"] = round(100 * 50 * extra_ns / call_ns_per_s, 2)
        result["rtp_cpu_pct_per_call_used"] = cpu
    path = write("hardening", result)
    for k, v in ns.items():
        print(f"{k:34s} {v:10.1f} ns")
    if "rtp_overhead_pct_of_echo_call_cpu" in result:
        print(f"RTP checks add {result['rtp_overhead_pct_of_echo_call_cpu']} % to an echo call's CPU "
              f"({cpu} % of a core per call)")
    st = result["register_storm"]
    print(f"{st['registers']} distinct REGISTERs from as many sources: {st['kept_mb']} MB kept "
          f"({st['bindings']} bindings, {st['transactions']} transactions, {st['sources_tracked']} sources tracked)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
