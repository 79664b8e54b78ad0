"""The whole benchmark suite in one command; writes var/bench/suite.json and suite.md.

    python -m telephony.bench.suite [--quick] [--minutes 30] [--eot-ms 250 --ttft-ms 300 --ttfb-ms 90]

Steps (each prints progress, each bounded, all on 127.0.0.1 inside private network namespaces):
codec throughput vs audioop; RTP plane at 1/10/50/100 echo calls (sipp); pipeline added latency at
1/10/50/100 calls with and without eager EOT (fake providers in their own process); soak: 50 calls
for --minutes with RSS at start and end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from . import OUT_DIR

ROOT = Path(__file__).resolve().parents[2]


def step(title: str, args: list[str], timeout: float) -> None:
    print(f"==> {title}", flush=True)
    subprocess.run([sys.executable, "-m", *args], cwd=ROOT, check=True, timeout=timeout)


def load(name: str) -> dict:
    return json.loads((OUT_DIR / f"{name}.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="shorter runs: 10 s RTP rounds, 1 minute soak")
    p.add_argument("--minutes", type=float, default=30.0, help="soak length")
    p.add_argument("--eot-ms", default="250")
    p.add_argument("--ttft-ms", default="300")
    p.add_argument("--ttfb-ms", default="90")
    a = p.parse_args()
    rtp_s = "10" if a.quick else "60"
    soak_min = 1.0 if a.quick else a.minutes
    step("codec throughput vs audioop", ["telephony.bench.codec"], 300)
    for n in (1, 10, 50, 100):
        step(f"RTP plane: {n} concurrent echo calls", ["telephony.bench.rtp", "--calls", str(n), "--seconds", rtp_s],
             600)
    step("hardening cost per packet (before vs after)", ["telephony.bench.hardening"], 300)
    step("pipeline added latency (plain and eager EOT)",
         ["telephony.bench.pipeline", "--calls", "1,10,50,100", "--eager", "--eot-ms", a.eot_ms, "--ttft-ms",
          a.ttft_ms, "--ttfb-ms", a.ttfb_ms], 900)
    os.replace(OUT_DIR / "rtp_50.json", OUT_DIR / "rtp_50_round.json")
    step(f"soak: 50 calls for {soak_min:g} min", ["telephony.bench.rtp", "--calls", "50", "--seconds",
                                                   str(int(soak_min * 60))], soak_min * 60 + 300)
    os.replace(OUT_DIR / "rtp_50.json", OUT_DIR / "soak.json")
    os.replace(OUT_DIR / "rtp_50_round.json", OUT_DIR / "rtp_50.json")
    report = {"date": datetime.date.today().isoformat(), "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
              f"Python {platform.python_version()}", "codec": load("codec"),
              "rtp": {n: load(f"rtp_{n}") for n in (1, 10, 50, 100)}, "pipeline": load("pipeline"),
              "soak": load("soak"), "hardening": load("hardening")}
    (OUT_DIR / "suite.json").write_text(json.dumps(report, indent=2))
    md = markdown(report)
    (OUT_DIR / "suite.md").write_text(md)
    print(md)


def markdown(r: dict) -> str:
    lines = [f"Benchmarks on {r['machine']}, {r['date']} (`python -m telephony.bench.suite`).", "",
             "| RTP plane (echo calls via sipp) | 1 | 10 | 50 | 100 |", "|---|---|---|---|---|"]
    rows = [("egress jitter p50 / p99 (ms)", lambda x: f"{x['egress_jitter_ms_p50']} / {x['egress_jitter_ms_p99']}"),
            ("inbound frames lost", lambda x: x["inbound_lost"]),
            ("CPU % of a core per call", lambda x: x["cpu_pct_of_core_per_call"]),
            ("RSS per call (KB)", lambda x: x["rss_per_call_kb"]),
            ("failed calls (sipp rc)", lambda x: x["sipp_rc"])]
    for label, fn in rows:
        lines.append(f"| {label} | " + " | ".join(str(fn(r["rtp"][str(n)] if str(n) in r["rtp"] else r["rtp"][n]))
                                                 for n in (1, 10, 50, 100)) + " |")
    fl = r["pipeline"]["fake_latencies_ms"]
    lines += ["", f"| Pipeline, fakes at EOT {fl['eot']} / TTFT {fl['ttft']} / TTFB {fl['ttfb']} ms | calls | "
              "added p50 / p95 / p99 (ms) | reply after EndOfTurn p50 / p95 (ms) | eager hits |",
              "|---|---|---|---|---|"]
    for row in r["pipeline"]["rounds"]:
        lines.append(f"| {'eager EOT' if row['eager'] else 'plain'} | {row['calls']} | {row['added_ms_p50']} / "
                     f"{row['added_ms_p95']} / {row['added_ms_p99']} | {row['reply_after_eot_ms_p50']} / "
                     f"{row['reply_after_eot_ms_p95']} | {row['eager_hits']}/{row['turns']} |")
    s = r["soak"]
    lines += ["", f"Soak: 50 calls for {s['wall_s']:.0f} s: RSS {s['rss_start_mb']} -> {s['rss_peak_mb']} MB, "
              f"lost frames {s['inbound_lost']}, calls answered {s['calls_answered']}/{s['calls_total']}, sipp rc "
              f"{s['sipp_rc']}.", ""]
    h = r.get("hardening")
    if h:
        ns = h["ns_per_packet"]
        lines += ["| Per-packet cost of the network checks (ns) | before | after |", "|---|---|---|"]
        for key, label in (("rtp_valid", "RTP, caller's packet"), ("rtp_stranger", "RTP, a stranger's packet"),
                           ("sip_parse_register", "SIP parse, REGISTER"), ("sip_parse_invite", "SIP parse, INVITE")):
            lines.append(f"| {label} | {ns.get(key + '_before', '-')} | {ns.get(key + '_after')} |")
        door = ns["sip_options_front_door_after"]
        lines += [f"| SIP front door, OPTIONS (budget, parse, reply, cache) | - | {door} |",
                  "", f"The RTP checks add {h.get('rtp_overhead_pct_of_echo_call_cpu')} % to an echo call's CPU.", ""]
    c = r["codec"]
    lines += ["| Codec (x real time; ratio vs audioop) | ours | audioop | ratio |", "|---|---|---|---|"]
    for k in ("ulaw_encode", "ulaw_decode", "alaw_encode", "alaw_decode", "resample_8k_16k", "resample_16k_8k"):
        lines.append(f"| {k} | {c[k]['ours_x_realtime']} | {c[k]['audioop_x_realtime']} | {c[k]['ratio']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
