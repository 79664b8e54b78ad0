"""telephony.bench.stalls reads py-spy profiles of the bridge: what counts as the loop waiting
(asyncio's selector, or uvloop's C loop under Runner.run) and how busy runs become stalls."""

import json

from telephony.bench.stalls import _is_idle, analyse

ENTRY = "Runner.run (runners.py:118)"
SELECT = "EpollSelector.select (selectors.py:468)"
TICK = "MediaClock._tick (clock.py:147)"


def test_idle_on_asyncio_and_on_uvloop_busy_in_a_callback():
    assert _is_idle([])
    assert _is_idle(["main (manage.py:11)", ENTRY, "BaseEventLoop._run_once (base_events.py:1898)", SELECT])
    assert _is_idle(["main (manage.py:11)", ENTRY])  # uvloop polling: nothing in Python above the entry
    assert not _is_idle(["main (manage.py:11)", ENTRY, TICK])
    assert not _is_idle(["main (manage.py:11)", "BaseEventLoop._run_once (base_events.py:1898)"])


def test_busy_runs_between_idle_samples_are_stalls(tmp_path):
    frames = ["main (manage.py:11)", ENTRY, TICK]
    doc = {"shared": {"frames": [{"name": n.split(" (")[0], "file": "/x/" + n.split("(")[1].split(":")[0],
                                  "line": int(n.rsplit(":", 1)[1].rstrip(")"))} for n in frames]},
           "rate": 100,
           # uvloop-shaped: idle (0,1), a 60 ms callback run (0,1,2 x6), idle, a 20 ms run, idle
           "profiles": [{"name": "MainThread", "samples": [[0, 1]] * 3 + [[0, 1, 2]] * 6 + [[0, 1]] * 2
                         + [[0, 1, 2]] * 2 + [[0, 1]]}]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    r = analyse(path, min_ms=50)
    assert r["samples"] == 14 and r["busy_pct"] == round(100 * 8 / 14, 1)
    assert r["stalls"] == 1 and r["stall_ms_max"] == 60.0
    assert r["top_leaf"][0] == (TICK, 100.0)
