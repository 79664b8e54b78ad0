"""The loop-lag monitor: max and p99 per window, logged when a window closes, shown in stats()."""

import asyncio
import logging
import time

from telephony.metrics.looplag import LoopLagMonitor


async def test_window_max_and_p99_are_logged_and_kept(caplog):
    mon = LoopLagMonitor(interval=0.01, window_s=60.0, warn_ms=20.0)
    mon.start()
    t0 = mon._window_start
    for i in range(1000):  # 980 samples at 1 ms, 19 at 15 ms, one stall of 80 ms
        lag = 0.080 if i == 500 else 0.015 if i % 50 == 7 and i < 950 else 0.001
        mon.record(lag, t0 + i * 0.01)
    assert mon.last_window is None and mon.stats()["current_max_ms"] == 80.0
    with caplog.at_level(logging.INFO, logger="telephony.looplag"):
        mon.record(0.001, t0 + 60.0)  # the minute is over
    mon.stop()
    stats = mon.stats()
    assert stats["max_ms"] == 80.0 and stats["p99_ms"] == 15.0 and stats["window_s"] == 60.0
    assert stats["current_max_ms"] == 0.0 and stats["all_time_max_ms"] == 80.0
    assert [r.levelno for r in caplog.records] == [logging.WARNING]  # 80 ms > warn_ms
    assert "max 80.0 ms, p99 15.0 ms" in caplog.records[0].getMessage()


async def test_a_blocked_loop_shows_up_as_lag():
    mon = LoopLagMonitor(interval=0.002)
    mon.start()
    await asyncio.sleep(0)  # let the probe be scheduled before we block
    time.sleep(0.03)  # deliberately block the loop: the probe cannot run for 30 ms
    probe_ran = asyncio.get_running_loop().create_future()
    mon.on_sample.append(lambda lag: probe_ran.done() or probe_ran.set_result(lag))
    lag = await probe_ran
    mon.stop()
    assert lag >= 0.02 and mon.stats()["current_max_ms"] >= 20.0
    assert not mon.running
