"""FluxSTT through its real websocket code path against the fake Flux server."""

import asyncio

import numpy as np
import pytest

from aioptions.fakes.flux_server import FakeFluxServer
from aioptions.providers.base import MULAW_8K, PCM_16K, AudioFormat, STTError
from aioptions.providers.flux import FluxSession, FluxSTT
from tests.eventually import eventually

FRAME = 160  # 20 ms of mu-law at 8 kHz, as RTP delivers it


def pattern(seconds: float, seed: int = 1) -> bytes:
    """Distinct audio bytes, so the server's copy can be located in what was sent."""
    return np.random.default_rng(seed).integers(0, 256, int(seconds * 8000), dtype=np.uint8).tobytes()


async def feed(session, seconds: float = 0.0, *, audio: bytes | None = None, pace: float = 0.0) -> None:
    audio = audio if audio is not None else b"\xff" * int(seconds * 8000)
    for i in range(0, len(audio), FRAME):
        await session.send(audio[i : i + FRAME])
        if pace:
            await asyncio.sleep(pace)


async def collect(session, until: str | None = "EndOfTurn", timeout: float = 5.0, count: int = 1) -> list:
    out = []

    async def run():
        async for ev in session.events():
            out.append(ev)
            if until and [e.kind for e in out].count(until) >= count:
                return

    await asyncio.wait_for(run(), timeout)
    return out


async def test_url_headers_framing_events_configure_and_close():
    async with FakeFluxServer(
        utterances=[(0.2, 1.0, "book an appointment")], eager_lead_ms=100, resume=True, api_key="sekrit"
    ) as srv:
        s = await FluxSTT(api_key="sekrit", url=srv.url).open(
            MULAW_8K, eot_threshold=0.8, eager_eot_threshold=0.5, eot_timeout_ms=3000
        )
        feeder = asyncio.create_task(feed(s, 1.6, pace=0.005))
        events = await collect(s)
        await feeder
        await s.configure(eot_threshold=0.9)
        await eventually(lambda: s.thresholds == {"eot_threshold": 0.9})
        assert s.configure_error is None
        await s.close()
        conn = srv.connections[0]
        assert conn.query == {
            "model": "flux-general-en",
            "encoding": "mulaw",
            "sample_rate": "8000",
            "eot_threshold": "0.8",
            "eager_eot_threshold": "0.5",
            "eot_timeout_ms": "3000",
        }
        assert conn.headers["Authorization"] == "Token sekrit"
        assert conn.headers["User-Agent"] == "TalkyAI-VoiceAgent/1.0"
        assert set(conn.frames) == {640}  # 80 ms of mu-law at 8 kHz (1.6 s = 20 whole frames)
        kinds = [e.kind for e in events]
        assert kinds[0] == "StartOfTurn" and kinds.count("Update") >= 2
        assert kinds[-3:] == ["EagerEndOfTurn", "TurnResumed", "EndOfTurn"]
        eot = events[-1]
        assert eot.transcript == "book an appointment" and eot.trigger == "model" and eot.turn_index == 0
        assert eot.speech_end == pytest.approx(1.0, abs=0.01) and eot.audio_window_start == pytest.approx(0.2)
        assert [w.word for w in eot.words] == ["book", "an", "appointment"] and eot.words[
            0
        ].confidence == 0.95
        assert all(e.received_at > 0 for e in events)
        assert conn.configures == [{"type": "Configure", "thresholds": {"eot_threshold": 0.9}}]
        assert conn.controls[-1] == {"type": "CloseStream"} and conn.closed_by_client
        assert conn.bytes_received == s.sent_bytes == s.accepted_bytes == 80 * FRAME
        assert s.audio_seconds == pytest.approx(1.6) and s.reconnects == 0 and s.request_id


@pytest.mark.parametrize("fmt,frame", [(PCM_16K, 2560), (AudioFormat("linear16", 8000), 1280)])
async def test_linear16_frames_are_80_ms(fmt, frame):
    async with FakeFluxServer() as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(fmt)
        await s.send(b"\x00" * (frame * 3 + 100))
        await eventually(lambda: len(srv.connections[0].frames) == 3)
        await s.close()
        assert srv.connections[0].frames == [frame, frame, frame, 100]  # the tail is flushed on close
        assert srv.connections[0].query["encoding"] == "linear16"


async def test_close_delivers_the_last_end_of_turn_then_ends_iteration():
    async with FakeFluxServer(utterances=[(0.1, 0.5, "last words")], eot_delay_ms=150) as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(MULAW_8K)
        await feed(s, 0.56)
        await asyncio.sleep(0.05)
        await s.close()  # EndOfTurn is still pending at the server: Flux finishes before closing
        events = [e async for e in s.events()]
        assert events[-1].kind == "EndOfTurn" and events[-1].transcript == "last words"
        await s.close()  # idempotent
        assert srv.connections[0].closed_by_client


async def test_configure_failure_is_recorded_not_fatal():
    async with FakeFluxServer(configure_fail=True, utterances=[(0.1, 0.3, "still works")]) as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(MULAW_8K)
        await s.configure(eager_eot_threshold=0.95)
        await feed(s, 0.5)
        events = await collect(s)
        assert "eager_eot_threshold" in s.configure_error and events[-1].transcript == "still works"
        await s.close()


async def test_bad_key_is_auth_error_without_retry():
    async with FakeFluxServer(api_key="right") as srv:
        with pytest.raises(STTError) as err:
            await FluxSTT(api_key="wrong", url=srv.url).open(MULAW_8K)
        assert err.value.kind == "auth" and err.value.status == 401
        assert len(srv.rejected) == 1 and not srv.connections
        assert "wrong" not in str(err.value)


async def test_missing_key_and_nothing_listening():
    with pytest.raises(STTError) as err:
        FluxSTT(api_key="")
    assert err.value.kind == "auth"
    with pytest.raises(STTError) as err:
        await FluxSTT(api_key="k", url="ws://127.0.0.1:9/v2/listen").open(MULAW_8K)
    assert err.value.kind == "connection"


async def test_flux_error_mid_utterance_reconnects_and_the_utterance_is_still_heard():
    fed = pattern(2.4, seed=4)
    async with FakeFluxServer(error_after_s=1.3, error_connections=1, utterances=[(1.0, 1.6, "after the error")],
                              record_audio=True) as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(MULAW_8K)
        feeder = asyncio.create_task(feed(s, audio=fed, pace=0.004))
        events = await collect(s, timeout=8)
        await feeder
        await s.close()
    assert srv.connections[0].sent[-1]["type"] == "Error" and len(srv.connections) == 2
    assert s.errors == 1 and s.reconnects == 1
    # the turn in progress (no EndOfTurn yet: from the call's start) was replayed to the new connection
    assert s.connection_offsets[1] == 0.0 and bytes(srv.connections[1].audio) == fed
    assert events[-1].kind == "EndOfTurn" and events[-1].transcript == "after the error"
    assert events[-1].speech_end == pytest.approx(1.6, abs=0.01)
    faults = s.take_faults()
    assert len(faults) == 1 and "Flux error INTERNAL_SERVER_ERROR" in faults[0] and s.take_faults() == []


async def test_repeated_flux_errors_give_up_and_keep_the_turn_in_progress_for_a_fallback():
    fed = pattern(0.6, seed=5)
    async with FakeFluxServer(error_after_s=0.2) as srv:
        s = await FluxSTT(api_key="k", url=srv.url, max_errors=2).open(MULAW_8K)
        await feed(s, audio=fed, pace=0.002)
        with pytest.raises(STTError, match="injected failure") as err:
            await collect(s, until=None, timeout=5)
        assert err.value.kind == "server" and s.errors == 3 and len(srv.connections) == 3
        assert s.unsent_audio() == fed  # no turn ended: all of it (within replay_s) is for the fallback
        await feed(s, 1.0)
        assert s.unsent_audio() == fed  # a dead session does not grow a buffer for the rest of the call
        await s.close()


async def test_configure_sends_thresholds_and_keyterms_and_reconnects_keep_them():
    async with FakeFluxServer(close_after_s=0.3, utterances=[(0.5, 0.7, "hi")]) as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(MULAW_8K, keyterms=["Acme"])
        await s.configure(eager_eot_threshold=0.5, eot_timeout_ms=3000, keyterms=["Acme", "Tuesday"])
        await feed(s, 1.2, pace=0.002)
        await collect(s, timeout=5)
        await s.close()
    first, second = srv.connections
    thresholds = {"eager_eot_threshold": 0.5, "eot_timeout_ms": 3000}
    assert first.configures == [{"type": "Configure", "thresholds": thresholds, "keyterms": ["Acme", "Tuesday"]}]
    assert s.configures_acked == 1 and s.thresholds == {"eager_eot_threshold": 0.5, "eot_timeout_ms": 3000}
    assert second.query["eager_eot_threshold"] == "0.5" and second.query["eot_timeout_ms"] == "3000"
    assert first.keyterms == ["Acme"] and second.keyterms == ["Acme", "Tuesday"]


async def test_configure_violating_the_documented_ranges_is_a_configure_failure():
    async with FakeFluxServer(utterances=[(0.1, 0.3, "still works")]) as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(MULAW_8K, eot_threshold=0.6)
        await s.configure(eager_eot_threshold=0.8)  # above eot_threshold
        await feed(s, 0.5)
        events = await collect(s)
        assert "eager_eot_threshold" in s.configure_error and events[-1].transcript == "still works"
        await s.close()


async def test_reconnect_loses_no_audio_and_keeps_the_call_clock():
    fed = pattern(2.4)
    async with FakeFluxServer(
        close_after_s=0.5, utterances=[(1.0, 1.6, "after the drop")], record_audio=True
    ) as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(MULAW_8K)
        feeder = asyncio.create_task(feed(s, audio=fed, pace=0.004))
        events = await collect(s, timeout=8)
        await feeder
        await s.close()
    first, second = srv.connections
    assert s.reconnects == 1 and len(s.connection_offsets) == 2
    start = round(s.connection_offsets[1] * 8000)
    assert bytes(first.audio) == fed[: len(first.audio)]
    assert start <= len(first.audio)  # the second connection starts where the first had got to, or before
    assert bytes(second.audio) == fed[start:]  # ... and carries everything after: nothing lost
    assert s.accepted_bytes == s.sent_bytes == len(fed) and s.wire_bytes >= len(fed)
    # the script ran on the second connection's own clock (0 at its first byte); ours is the call's
    assert events[-1].speech_end == pytest.approx(s.connection_offsets[1] + 1.6, abs=0.01)


async def test_replay_starts_after_the_last_finished_turn_and_turn_index_continues():
    fed = pattern(2.0, seed=2)
    async with FakeFluxServer(
        close_after_s=1.2, utterances=[(0.2, 0.5, "first turn")], eot_delay_ms=20, record_audio=True
    ) as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(MULAW_8K)
        feeder = asyncio.create_task(feed(s, audio=fed, pace=0.01))
        events = await collect(s, timeout=8, count=2)
        await feeder
        await s.close()
    ends = [e for e in events if e.kind == "EndOfTurn"]
    assert [e.turn_index for e in ends] == [0, 1]  # the second connection's turn 0 is the call's turn 1
    assert s.connection_offsets[1] == pytest.approx(0.5)  # replay from the end of the finished turn
    assert bytes(srv.connections[1].audio) == fed[4000:]
    assert ends[1].speech_end == pytest.approx(0.5 + 0.5, abs=0.01)  # its own 0.5 s, on the call clock


async def test_replay_is_bounded_by_replay_s():
    fed = pattern(2.0, seed=3)
    async with FakeFluxServer(close_after_s=1.6, record_audio=True) as srv:
        s = await FluxSTT(api_key="k", url=srv.url, replay_s=0.5).open(MULAW_8K)
        await feed(s, audio=fed, pace=0.003)
        await eventually(lambda: s.reconnects and srv.total_bytes >= len(fed) + 2000)
        await s.close()
    first, second = srv.connections
    start = round(s.connection_offsets[1] * 8000)
    assert len(first.audio) - start <= 4000 + 640  # at most replay_s (+ one frame in flight) again
    assert start <= len(first.audio) and bytes(second.audio) == fed[start:]


async def test_reconnect_gives_up_after_bounded_attempts():
    async with FakeFluxServer(close_after_s=0.1, close_connections=99) as srv:
        s = await FluxSTT(api_key="k", url=srv.url, max_reconnects=2).open(MULAW_8K)
        feeder = asyncio.create_task(feed(s, 1.0, pace=0.002))
        with pytest.raises(STTError) as err:
            await collect(s, until=None, timeout=5)
        assert err.value.kind == "closed" and len(srv.connections) == 3
        await feeder
        await s.close()


async def test_reconnect_refused_with_401_is_fatal_auth():
    async with FakeFluxServer(close_after_s=0.2) as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(MULAW_8K)
        srv.handshake_status = 401  # the key was revoked while the call ran
        await feed(s, 0.5)
        with pytest.raises(STTError) as err:
            await collect(s, until=None, timeout=5)
        assert err.value.kind == "auth" and len(srv.rejected) == 1
        await s.close()


async def test_slow_consumer_blocks_neither_send_nor_the_receiver():
    async with FakeFluxServer(utterances=[(0.1, 0.3, "hi"), (0.6, 0.9, "there")], eot_delay_ms=10) as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(MULAW_8K)
        await asyncio.wait_for(feed(s, 2.0), 10)  # nobody reads events meanwhile, and send never waits for them
        await eventually(lambda: srv.connections[0].bytes_received == 16000)  # the sender kept shipping
        await eventually(lambda: s._events.qsize() >= 4)  # the receiver kept receiving (StartOfTurn + EndOfTurn x2)
        events = await collect(s, count=2)
        assert [e.transcript for e in events if e.kind == "EndOfTurn"] == ["hi", "there"]
        await s.close()


async def test_backlog_is_capped_while_disconnected_and_the_clock_still_counts():
    stt = FluxSTT(api_key="k", max_backlog_s=1.0)
    s = FluxSession(stt, MULAW_8K, {})  # never connected: everything stays pending
    await feed(s, 3.0)
    assert len(s._pending) == 8000 and s.dropped_bytes == 16000 and s._pending_pos == 16000
    assert s.audio_seconds == pytest.approx(3.0)


async def test_end_of_speech_ships_the_partial_frame_at_once():
    """Issue 18: speech in 80 ms chunks, but the first silent 20 ms frame after speech ships what is
    pending at once, so Flux's end-of-turn clock is not held back by framing; pure silence and
    speech in progress still wait for whole 80 ms chunks."""
    loud, quiet = b"\x10" * FRAME, b"\xff" * FRAME

    async def settle():  # let the sender task run (no waiting on the clock)
        for _ in range(20):
            await asyncio.sleep(0)

    async with FakeFluxServer() as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(MULAW_8K)
        await feed(s, audio=quiet * 11)
        await settle()
        assert (s.sent_bytes, len(s._pending)) == (2 * 640, 3 * FRAME)  # silence: 80 ms chunks
        await feed(s, audio=loud * 2)
        await settle()
        assert (s.sent_bytes, len(s._pending)) == (3 * 640, FRAME)  # speech: 80 ms chunks, 20 ms waits
        await feed(s, audio=quiet)  # speech ended: the 40 ms pending go now, not 40 ms later
        await settle()
        assert (s.sent_bytes, len(s._pending)) == (14 * FRAME, 0)
        await s.close()
    assert srv.connections[0].frames == [640, 640, 640, 320]
