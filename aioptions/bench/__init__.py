"""What every benchmark shares: where its JSON goes and how it computes percentiles.

Benchmarks print numbers and write JSON under var/bench/ (never run as tests). This lives in the
lowest package so that aioptions' benchmark and telephony's (which re-exports it as
``telephony.bench``) use one copy without aioptions importing telephony.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from aioptions.stats import percentile as pct

OUT_DIR = Path(__file__).resolve().parents[2] / "var" / "bench"

__all__ = ["OUT_DIR", "interrupt", "pct", "write"]


def interrupt(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGINT (a bridge drains, py-spy writes its profile), then SIGKILL if it outlives the grace."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def write(name: str, data: dict) -> Path:
    """Write a benchmark's result as var/bench/<name>.json; returns the path."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
