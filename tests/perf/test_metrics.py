"""Prometheus /metrics (issue 18): a fake call through the runtime hooks and a real RtpSession on the
media clock, scraped from the bridge's loopback endpoint and from the web view; names and values."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from prometheus_client.parser import text_string_to_metric_families

from telephony.metrics.looplag import LoopLagMonitor
from telephony.metrics.prom import COLLECTOR, REGISTRY
from telephony.metrics.runtime import ProcessRuntime
from telephony.metrics.serve import serve
from telephony.pipeline import store
from telephony.rtp.clock import MediaClock
from telephony.rtp.packet import build_rtp
from telephony.rtp.session import RtpSession


class Obj(SimpleNamespace):
    """SimpleNamespace that can be weakly referenced (the collector watches gateways weakly)."""

    __slots__ = ("__weakref__",)
    __hash__ = object.__hash__


class NullTransport:
    def sendto(self, data, addr) -> None:
        pass

    def close(self) -> None:
        pass


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def scrape(port: int) -> dict[str, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            key = s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items()))
            out[key] = s.value
    return out


async def test_fake_call_is_counted_and_scraped():
    now = [0.0]
    clock = MediaClock(time_source=lambda: now[0])
    session = RtpSession(payload_type=0, codec="PCMU", remote=("127.0.0.1", 40000), clock=clock)
    session.transport, session.verified, session.latched = NullTransport(), True, True
    clock._callbacks.append(session.tick)
    call = SimpleNamespace(session=session, end_reason=None)
    dialog = SimpleNamespace(state="confirmed", call=call)
    gateway = Obj(dialogs={"c1": dialog}, clock=clock, active_calls=1)
    lag = LoopLagMonitor()
    runtime = ProcessRuntime()
    lag.on_sample.extend(runtime.lag.on_sample)
    COLLECTOR.watch(gateway=gateway, lag=lag)
    started0, bye0 = value("talky_calls_started_total"), value("talky_calls_ended_total", reason="bye")
    lag_n0 = value("talky_event_loop_lag_seconds_count")
    eot_n0 = value("talky_turn_stage_seconds_count", stage="eot")
    server = await serve(0)
    port = server.sockets[0].getsockname()[1]
    try:
        runtime.call_started()
        # caller audio with seq 3 missing, then a 100 ms stall of the clock
        for seq in (1, 2, 4, 5, 6, 7, 8):
            session.datagram_received(build_rtp(0, seq, seq * 160, 77, False, b"\xff" * 160), ("127.0.0.1", 40000))
        session.enqueue(b"\x11" * 160 * 10)
        clock.start_at(0.0)
        for t in (0.0, 0.02, 0.04, 0.06, 0.16, 0.18, 0.2):
            now[0] = t
            clock.run_due(t)
        lag.record(0.003, 1.0)
        await store.save_turn(None, {"eot_received_ms": 410.0, "llm_ttft_ms": 300.0, "tts_ttfb_ms": 90.0,
                                     "tts_first_audio_ms": 800.0, "first_rtp_ms": 812.0, "mouth_to_ear_ms": 812.0})
        live = await scrape(port)
        assert live["talky_calls_started_total"] == started0 + 1
        assert live["talky_calls_active"] >= 1
        assert live["talky_jitter_buffer_target_frames{stat=max}"] >= 2
        assert "talky_jitter_buffer_depth_frames{stat=mean}" in live
        assert live["talky_rtp_inbound_lost_frames_total"] >= 1  # seq 3
        assert live["talky_rtp_outbound_deferred_frames_total"] >= 3  # 100 ms stall: 6 due, 2 sent
        assert live["talky_media_clock_deferred_ticks_total"] >= 3
        assert live["talky_media_clock_late_ticks_total"] >= 1
        assert live["talky_event_loop_lag_seconds_count"] == lag_n0 + 1
        assert live["talky_turn_stage_seconds_count{stage=eot}"] == eot_n0 + 1
        for stage in ("llm_ttft", "tts_ttfb", "playout", "mouth_to_ear"):
            assert f"talky_turn_stage_seconds_count{{stage={stage}}}" in live
        assert "process_resident_memory_bytes" in live
        assert "talky_call_setup_rate" in live and "talky_event_loop_lag_window_seconds{stat=p99}" in live

        # the call ends: counted by reason, gone from the live gauges, counters never go down
        lost = live["talky_rtp_inbound_lost_frames_total"]
        call.end_reason = "bye"
        dialog.state = "ended"
        gateway.active_calls = 0
        runtime.call_ended(call)
        after = await scrape(port)
        assert after["talky_calls_ended_total{reason=bye}"] == bye0 + 1
        assert after["talky_calls_active"] == live["talky_calls_active"] - 1
        assert after["talky_rtp_inbound_lost_frames_total"] >= lost
    finally:
        server.close()
        await server.wait_closed()


async def test_bridge_endpoint_is_loopback_only_and_404s_elsewhere():
    with pytest.raises(ValueError):
        await serve(0, host="0.0.0.0")
    server = await serve(0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /admin HTTP/1.1\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 404")
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.django_db
def test_web_metrics_loopback_or_staff(client):
    ok = client.get("/metrics")  # the test client connects from 127.0.0.1
    assert ok.status_code == 200 and ok["Content-Type"].startswith("text/plain")
    assert b"talky_calls_started_total" in ok.content and b"talky_turn_stage_seconds" in ok.content
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 401
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 401  # a local proxy
    users = get_user_model().objects
    users.create_user("joe", password="pw-123456")
    client.login(username="joe", password="pw-123456")
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    users.create_user("op", password="pw-123456", is_staff=True)
    client.login(username="op", password="pw-123456")
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 200
    assert client.post("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 405
