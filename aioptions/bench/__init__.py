"""What every benchmark shares: where its JSON goes and how it computes percentiles.

Benchmarks print numbers and write JSON under var/bench/ (never run as tests). This lives in the
lowest package so that aioptions' benchmark and telephony's (which re-exports it as
``telephony.bench``) use one copy without aioptions importing telephony.
"""

from __future__ import annotations

import json
from pathlib import Path

from aioptions.stats import percentile as pct

OUT_DIR = Path(__file__).resolve().parents[2] / "var" / "bench"

__all__ = ["OUT_DIR", "pct", "write"]


def write(name: str, data: dict) -> Path:
    """Write a benchmark's result as var/bench/<name>.json; returns the path."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
