"""What blocks the bridge's event loop: py-spy samples of the main thread, cut into busy runs.

    python -m telephony.bench.stalls PROFILE.json [--min-ms 50] [--top 25]

The wire benchmark records one speedscope profile per round with ``--profile`` (``py-spy record
--idle``, so idle samples keep their place in time). A *busy run* is an unbroken sequence of main
thread samples that are not parked in the selector: the loop ran callbacks for that long without
polling, which is exactly the lag every call's 20 ms tick sees. Runs of at least ``--min-ms`` are
stalls; the report gives their count and length, and the functions (inclusive, once per sample)
that filled them, so the top entries say what to move off the loop or make incremental.
Writes var/bench/stalls.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import Counter
from pathlib import Path

from . import pct, write


def start_py_spy(pid: int, out: Path, rate: int = 100) -> subprocess.Popen | None:
    """py-spy on ``pid`` until SIGINT (then it writes ``out``); None when py-spy is not installed."""
    import shutil
    import sys

    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        print("  (py-spy not installed: pip install py-spy; no profile)")
        return None
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", str(rate), "--idle", "--nonblocking",
                             "--format", "speedscope", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_py_spy(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    from . import interrupt

    interrupt(proc)


def _frame_names(doc: dict) -> list[str]:
    return [f"{f['name']} ({Path(f.get('file') or '?').name}:{f.get('line', '?')})" for f in doc["shared"]["frames"]]


# uvloop's loop is C: while it polls, py-spy's top Python frame is the call that started the loop
LOOP_ENTRIES = ("Runner.run (runners.py", "BaseEventLoop.run_until_complete (base_events.py")


def _is_idle(stack: list[str]) -> bool:
    """Parked in the poll, or an empty sample. asyncio: the top of the stack is the selector's
    select/poll. uvloop: the top is the frame that entered the loop (``Runner.run``), with no
    Python callback above it; this also counts uvloop's own C work between callbacks as idle, so
    on uvloop the report covers Python callbacks only."""
    if not stack:
        return True
    leaf = stack[-1].split(" (", 1)[0].rsplit(".", 1)[-1]  # "EpollSelector.select (selectors.py:468)"
    if leaf in ("select", "poll") and "(selectors.py" in stack[-1]:
        return True
    return stack[-1].startswith(LOOP_ENTRIES)


def analyse(path: Path, min_ms: float = 50.0, top: int = 25) -> dict:
    doc = json.loads(path.read_text())
    names = _frame_names(doc)
    main = next((p for p in doc["profiles"] if "MainThread" in p.get("name", "")), doc["profiles"][0])
    period_ms = 1000.0 / float(doc.get("rate", 0) or 100)
    samples = [[names[i] for i in s] for s in main["samples"]]
    runs: list[list[list[str]]] = []
    cur: list[list[str]] = []
    for s in samples:
        if _is_idle(s):
            if cur:
                runs.append(cur)
            cur = []
        else:
            cur.append(s)
    if cur:
        runs.append(cur)
    stalls = [r for r in runs if len(r) * period_ms >= min_ms]
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    for r in stalls:
        for s in r:
            for name in set(s):
                inclusive[name] += 1
            leaf[s[-1]] += 1
    busy = sum(len(r) for r in runs)
    stall_samples = sum(len(r) for r in stalls)
    lengths = [len(r) * period_ms for r in stalls]
    return {"profile": str(path), "samples": len(samples), "sample_ms": period_ms,
            "busy_pct": round(100.0 * busy / max(1, len(samples)), 1),
            "stalls": len(stalls), "stall_ms_p50": pct(lengths, 50), "stall_ms_max": max(lengths, default=0),
            "stall_share_of_busy_pct": round(100.0 * stall_samples / max(1, busy), 1),
            "top_inclusive": [(n, round(100.0 * c / max(1, stall_samples), 1)) for n, c in inclusive.most_common(top)],
            "top_leaf": [(n, round(100.0 * c / max(1, stall_samples), 1)) for n, c in leaf.most_common(top)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profiles", nargs="+", type=Path)
    ap.add_argument("--min-ms", type=float, default=50.0)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    out = {}
    for p in args.profiles:
        r = analyse(p, args.min_ms, args.top)
        out[p.name] = r
        print(f"{p.name}: {r['samples']} samples, loop busy {r['busy_pct']} %, {r['stalls']} stalls >= "
              f"{args.min_ms:.0f} ms (p50 {r['stall_ms_p50']} ms, max {r['stall_ms_max']} ms), "
              f"{r['stall_share_of_busy_pct']} % of busy time")
        print("  inclusive % of stall samples:")
        for n, share in r["top_inclusive"]:
            print(f"    {share:5.1f}  {n}")
        print("  leaf:")
        for n, share in r["top_leaf"][:12]:
            print(f"    {share:5.1f}  {n}")
    print("written to", write("stalls", out))


if __name__ == "__main__":
    main()
