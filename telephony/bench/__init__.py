"""Benchmarks: print numbers and write JSON under var/bench/ (never run as tests).

``write`` and ``pct`` are the shared ones from ``aioptions.bench`` (the lower package, so its own
benchmark need not import telephony); re-exported here for the benchmarks below.
"""

from __future__ import annotations

from aioptions.bench import OUT_DIR, interrupt, pct, write

__all__ = ["OUT_DIR", "interrupt", "pct", "write"]
