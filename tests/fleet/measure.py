"""Measure the fleet's per-call costs for docs/scaling.md: Kamailio CPU per call, bridge CPU per
(signalling-only) call, database transactions/rows per call, with the real processes of
tests/fleet/harness.py (Kamailio + two run_sip_bridge + PostgreSQL in a private namespace).

    .venv/bin/python -m tests.fleet.measure [--calls 600] [--rate 30]      (root: unshare -n)

Idle background (heartbeats, Kamailio's 1 s fleet poll) is measured for 10 s first and subtracted.
Calls are sipp with digest through the proxy, 1 s long, the echo agent, no RTP from the caller (the
media plane's cost per call is the RTP benchmark's: telephony.bench.rtp).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from tests.fleet.harness import read, run_fleet, sipp

SNAP = r"""
snap() {  # $1 = label: CPU ticks of kamailio (all processes) and each bridge, PG counters
  k=0; for p in $KAM $(pgrep -P $KAM); do k=$((k + $(awk '{print $14 + $15}' /proc/$p/stat))); done
  a=$(awk '{print $14 + $15}' /proc/$BRIDGE_A/stat); b=$(awk '{print $14 + $15}' /proc/$BRIDGE_B/stat)
  pg=$(psql -h 127.0.0.1 -U postgres talky -Atc "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted, \
       tup_returned + tup_fetched FROM pg_stat_database WHERE datname = 'talky'" | tr '|' ' ')
  echo "$1 $(now) $k $a $b $pg" >> $T/snaps.txt
}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=600)
    ap.add_argument("--rate", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="talky-fleet-measure-"))
    body = (SNAP + "snap idle0\nsleep 10\nsnap idle1\n"
            + sipp(tmp, "load", "caller_auth.xml", ip="127.0.0.21", port=5070,
                   extra=f"-m {args.calls} -r {args.rate} -l {args.rate * 3} -d 1000")
            + "snap load\n")
    out = run_fleet(tmp, body, kam_extra="-A PIKE_DENSITY=100000", timeout=120 + 3 * args.calls / args.rate)
    snaps = {ln.split()[0]: [float(x) for x in ln.split()[1:]] for ln in read(tmp, "snaps.txt").splitlines()}
    if set(snaps) != {"idle0", "idle1", "load"}:
        raise SystemExit(f"measurement failed:\n{out}")
    tick = os.sysconf("SC_CLK_TCK")
    i0, i1, ld = snaps["idle0"], snaps["idle1"], snaps["load"]
    idle_s, load_s = i1[0] - i0[0], ld[0] - i1[0]
    rate = [(b - a) / idle_s for a, b in zip(i0[1:], i1[1:], strict=True)]  # background per second
    net = [(c - b) - r * load_s for b, c, r in zip(i1[1:], ld[1:], rate, strict=True)]
    n = args.calls
    result = {
        "calls": n, "rate_cps": args.rate, "load_wall_s": round(load_s, 1),
        "sipp": " | ".join(ln.strip() for ln in read(tmp, "load.out").splitlines()
                           if "Successful call" in ln or "Failed call" in ln),
        "kamailio_cpu_ms_per_call": round(net[0] / tick * 1000 / n, 3),
        "bridges_cpu_ms_per_call": round((net[1] + net[2]) / tick * 1000 / n, 3),
        "pg_commits_per_call": round(net[3] / n, 2), "pg_rows_written_per_call": round(net[4] / n, 2),
        "pg_rows_read_per_call": round(net[5] / n, 1),
        "idle_pg_commits_per_s": round(rate[3], 2), "idle_kamailio_cpu_ms_per_s": round(rate[0] / tick * 1000, 2),
    }
    print(json.dumps(result, indent=2))
    out_dir = Path("var/bench")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fleet.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
