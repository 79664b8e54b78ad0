"""Garbage-collector pauses: timed by generation for /metrics and the status, and the start-up heap
frozen out of later collections (telephony.metrics.gcpause)."""

import gc

from prometheus_client import generate_latest

from telephony.metrics import prom
from telephony.metrics.gcpause import YOUNG_THRESHOLD, GcPauses, freeze_startup_heap


def test_each_collection_is_timed_by_its_generation():
    now = [10.0]
    seen = []
    pauses = GcPauses(observe=lambda gen, s: seen.append((gen, s)), clock=lambda: now[0])
    pauses("stop", {"generation": 0})  # a stop without a start (callback added mid-collection): ignored
    pauses("start", {"generation": 2})
    now[0] += 0.3
    pauses("stop", {"generation": 2})
    pauses("start", {"generation": 0})
    now[0] += 0.001
    pauses("stop", {"generation": 0})
    assert [(g, round(s, 6)) for g, s in seen] == [(2, 0.3), (0, 0.001)]
    assert pauses.count == [1, 0, 1]
    assert pauses.stats()["max_ms"] == [1.0, 0.0, 300.0]


def test_registered_only_while_started_and_sees_a_real_collection():
    seen = []
    pauses = GcPauses(observe=lambda gen, s: seen.append(gen))
    pauses.start()
    pauses.start()  # idempotent: one callback
    try:
        assert gc.callbacks.count(pauses) == 1
        gc.collect()
    finally:
        pauses.stop()
    assert pauses not in gc.callbacks and 2 in seen
    gc.collect()
    assert seen.count(2) == 1  # stopped: the second collection is not seen


def test_freeze_moves_the_live_heap_out_of_collections_and_spaces_young_ones():
    threshold = gc.get_threshold()
    try:
        frozen = freeze_startup_heap()
        assert frozen > 1000 and gc.get_freeze_count() == frozen
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
    assert gc.get_freeze_count() == 0


def test_pauses_reach_metrics():
    prom.observe_gc_pause(2, 0.3)
    text = generate_latest(prom.REGISTRY).decode()
    assert 'talky_gc_pause_seconds_bucket{generation="2",le="0.5"}' in text
