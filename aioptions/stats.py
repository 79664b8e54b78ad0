"""Percentiles, in one place: the benchmarks, the latency dashboard and the per-call summary all
report p50/p95/p99 and must mean the same thing by it (three copies drifted apart once already).

Plain Python, no Django: this is the lowest layer, so telephony's benches and pages may import it
and aioptions' own benchmark may too, without an arrow pointing back up.
"""

from __future__ import annotations

from collections.abc import Iterable


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) on the rank ``round(p/100 * (n-1))``; None for no values.

    A value that occurred, never an interpolation: a latency p95 is a turn someone really waited."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1)))))]
