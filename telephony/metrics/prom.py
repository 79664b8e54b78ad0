"""Prometheus metrics of a bridge process (issue 18 step 6): what an operator needs to see without a
benchmark — calls, set-up rate, loop lag, jitter-buffer depth, late/lost/deferred frames and the
per-stage turn latency.

Why it costs nothing per packet: the packet path already keeps plain integer counters (RtpSession,
JitterBuffer, MediaClock). This module reads them only when scraped (``MediaCollector.collect``),
folding each live session's counters into process totals by difference, so a counter never goes
down when a call ends. Events that happen once per call or per turn (call start/end, a turn's
waterfall) update prometheus-client metrics directly; loop lag is observed from the monitor's
``on_sample`` hook (~100 a second). Plain asyncio + prometheus-client, no Django.

Labels are bounded (end reason, turn stage, stat): never a caller, a campaign, a URL or a key.
Collection runs on the event loop's thread (the async /metrics view, or ``serve``'s handler), the
thread that mutates the sessions, so nothing needs a lock.
"""

from __future__ import annotations

import collections
import time
import weakref
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ...

CALLS_STARTED = Counter("talky_calls_started", "Calls that reached the bridge's call set-up (in and out).",
                        registry=REGISTRY)
CALLS_ENDED = Counter("talky_calls_ended", "Calls finalised, by end reason.", ["reason"], registry=REGISTRY)
LOOP_LAG = Histogram("talky_event_loop_lag_seconds", "How late the event loop ran a 10 ms timer.",
                     buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0), registry=REGISTRY)
GC_PAUSE = Histogram("talky_gc_pause_seconds", "How long each garbage collection stopped the process, by "
                     "generation.", ["generation"], buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                            0.25, 0.5, 1.0), registry=REGISTRY)
TURN_STAGE = Histogram("talky_turn_stage_seconds",
                       "Per-turn latency by stage, from the caller's end of speech (eot, mouth_to_ear) or "
                       "the stage's own request (llm_ttft, tts_ttfb, playout = TTS first audio to first RTP).",
                       ["stage"], buckets=(0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0,
                                           5.0, 10.0), registry=REGISTRY)
# (metric stage label, Turn waterfall field) — the fields telephony.pipeline.agent stores per turn
_STAGE_FIELDS = (("eot", "eot_received_ms"), ("llm_ttft", "llm_ttft_ms"), ("tts_ttfb", "tts_ttfb_ms"),
                 ("mouth_to_ear", "mouth_to_ear_ms"))
_SESSION_COUNTERS = ("lost", "late", "concealed", "out_deferred")
_SETUP_WINDOW_S = 60.0


def observe_turn(fields: dict) -> None:
    """File one turn's waterfall (milliseconds) in the stage histograms; missing or negative = skipped
    (an eager reply can start before end of turn; a barge-in may have no first packet)."""
    for stage, key in _STAGE_FIELDS:
        v = fields.get(key)
        if v is not None and v >= 0:
            TURN_STAGE.labels(stage).observe(v / 1000.0)
    tts, rtp = fields.get("tts_first_audio_ms"), fields.get("first_rtp_ms")
    if tts is not None and rtp is not None and rtp >= tts:
        TURN_STAGE.labels("playout").observe((rtp - tts) / 1000.0)


def observe_loop_lag(lag: float) -> None:
    LOOP_LAG.observe(lag)


def observe_gc_pause(generation: int, seconds: float) -> None:
    GC_PAUSE.labels(str(generation)).observe(seconds)


class MediaCollector(Collector):
    """Reads the watched gateways (and their clock and sessions) and loop monitors at scrape time."""

    def __init__(self, clock=time.monotonic) -> None:
        self._gateways: weakref.WeakSet = weakref.WeakSet()
        self._lags: weakref.WeakSet = weakref.WeakSet()
        self._seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # session -> counters folded
        self.totals = dict.fromkeys(_SESSION_COUNTERS, 0)
        self._starts: collections.deque[float] = collections.deque(maxlen=10_000)
        self._clock = clock

    def watch(self, gateway=None, lag=None) -> None:
        if gateway is not None:
            self._gateways.add(gateway)
        if lag is not None:
            self._lags.add(lag)

    def call_started(self) -> None:
        CALLS_STARTED.inc()
        self._starts.append(self._clock())

    def call_ended(self, session, reason: str | None) -> None:
        CALLS_ENDED.labels(reason or "error").inc()
        if session is not None:
            self._fold(session)
            self._seen.pop(session, None)

    def _fold(self, session) -> None:
        jb = session.jitter
        cur = (jb.lost, jb.late, jb.concealed, getattr(session, "out_deferred", 0))
        prev = self._seen.get(session, (0, 0, 0, 0))
        for name, c, p in zip(_SESSION_COUNTERS, cur, prev, strict=True):
            if c > p:
                self.totals[name] += c - p
        self._seen[session] = cur

    def _sessions(self) -> Iterator:
        for gw in list(self._gateways):
            for dlg in list(gw.dialogs.values()):
                call = getattr(dlg, "call", None)
                if call is not None and dlg.state != "ended":
                    yield call.session

    def setup_rate(self) -> float:
        """Calls started per second over the last minute."""
        cutoff = self._clock() - _SETUP_WINDOW_S
        while self._starts and self._starts[0] < cutoff:
            self._starts.popleft()
        return len(self._starts) / _SETUP_WINDOW_S

    def collect(self) -> Iterable[Metric]:
        gateways = list(self._gateways)
        yield GaugeMetricFamily("talky_calls_active", "Calls in progress on this process.",
                                value=sum(gw.active_calls for gw in gateways))
        yield GaugeMetricFamily("talky_call_setup_rate", "Calls started per second, over the last minute "
                                "(or rate(talky_calls_started_total[1m])).", value=self.setup_rate())
        depth = GaugeMetricFamily("talky_jitter_buffer_depth_frames", "Inbound jitter-buffer level over live "
                                  "calls, in 20 ms frames.", labels=["stat"])
        target = GaugeMetricFamily("talky_jitter_buffer_target_frames", "Adaptive jitter-buffer target over "
                                   "live calls, in 20 ms frames.", labels=["stat"])
        levels, targets = [], []
        for s in self._sessions():
            self._fold(s)
            levels.append(s.jitter.level())
            targets.append(s.jitter.target)
        for fam, xs in ((depth, levels), (target, targets)):
            fam.add_metric(["mean"], sum(xs) / len(xs) if xs else 0.0)
            fam.add_metric(["max"], max(xs, default=0))
            yield fam
        for name, key, doc in (
                ("talky_rtp_inbound_lost_frames", "lost", "Inbound frames never received (concealed, skipped)."),
                ("talky_rtp_inbound_late_packets", "late", "Inbound packets that came after their frame played."),
                ("talky_rtp_inbound_concealed_frames", "concealed", "Ticks with no inbound frame to play."),
                ("talky_rtp_outbound_deferred_frames", "out_deferred",
                 "Outbound packets held back after a late tick (smooth egress: no burst ahead of real time).")):
            yield CounterMetricFamily(name, doc, value=self.totals[key])
        clocks = [gw.clock for gw in gateways]
        for name, attr, doc in (
                ("talky_media_clock_ticks", "ticks", "20 ms media clock ticks run."),
                ("talky_media_clock_late_ticks", "late_ticks", "Clock wake-ups more than one tick late."),
                ("talky_media_clock_deferred_ticks", "deferred_ticks", "Ticks run without sending (catch-up)."),
                ("talky_media_clock_skipped_ticks", "skipped_ticks", "Ticks not run (stall beyond catch-up)."),
                ("talky_media_clock_errors", "errors", "Failing tick callbacks.")):
            yield CounterMetricFamily(name, doc, value=sum(getattr(c, attr) for c in clocks))
        lag_max = GaugeMetricFamily("talky_event_loop_lag_window_seconds", "Loop lag of the last full window "
                                    "(a minute): max and p99.", labels=["stat"])
        stats = [m.stats() for m in list(self._lags)]
        lag_max.add_metric(["max"], max((s["max_ms"] for s in stats), default=0.0) / 1000.0)
        lag_max.add_metric(["p99"], max((s["p99_ms"] for s in stats), default=0.0) / 1000.0)
        yield lag_max


COLLECTOR = MediaCollector()
REGISTRY.register(COLLECTOR)


def exposition() -> bytes:
    """The text format of every metric of this process."""
    return generate_latest(REGISTRY)
