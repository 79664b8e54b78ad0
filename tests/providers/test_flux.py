import asyncio
import subprocess
import sys

import pytest

from aioptions.providers.base import MULAW_8K, PCM_16K, STTError
from aioptions.providers.flux import FluxSTT
from tests.fakes.flux_server import FakeFluxServer


async def feed(session, seconds: float, chunk: bytes = b"\xff" * 160, pace: float = 0.0) -> None:
    for _ in range(int(seconds / 0.02)):
        await session.send(chunk)
        if pace:
            await asyncio.sleep(pace)


async def collect(session, until: str = "EndOfTurn", timeout: float = 5.0) -> list:
    out = []

    async def run():
        async for ev in session.events():
            out.append(ev)
            if ev.kind == until:
                return

    await asyncio.wait_for(run(), timeout)
    return out


async def test_url_headers_framing_events_and_close():
    async with FakeFluxServer(utterances=[(0.2, 1.0, "book an appointment")], eager_lead_ms=100,
                              api_key="sekrit") as srv:
        s = await FluxSTT(api_key="sekrit", url=srv.url).open(MULAW_8K, eot_threshold=0.8, eager_eot_threshold=0.5,
                                                              eot_timeout_ms=3000)
        feeder = asyncio.create_task(feed(s, 1.6, pace=0.005))
        events = await collect(s)
        await feeder
        await s.configure(eot_threshold=0.9)
        await s.close()
        conn = srv.connections[0]
        assert conn.query == {"model": "flux-general-en", "encoding": "mulaw", "sample_rate": "8000",
                              "eot_threshold": "0.8", "eager_eot_threshold": "0.5", "eot_timeout_ms": "3000"}
        assert conn.headers["Authorization"] == "Token sekrit"
        assert conn.headers["User-Agent"] == "TalkyAI-VoiceAgent/1.0"
        assert set(conn.frames[:-1]) == {640}  # 80 ms of mu-law at 8 kHz
        kinds = [e.kind for e in events]
        assert kinds[0] == "StartOfTurn" and "Update" in kinds and kinds[-2:] == ["EagerEndOfTurn", "EndOfTurn"]
        eot = events[-1]
        assert eot.transcript == "book an appointment" and eot.trigger == "model"
        assert eot.speech_end == pytest.approx(1.0, abs=0.01)
        assert {"type": "Configure", "thresholds": {"eot_threshold": 0.9}} in conn.controls
        assert conn.controls[-1] == {"type": "CloseStream"} and conn.closed_by_client
        assert conn.bytes_received == s.sent_bytes == 80 * 160


async def test_linear16_16k_frames_are_2560_bytes():
    async with FakeFluxServer() as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(PCM_16K)
        await s.send(b"\x00" * 2560 * 3)
        await asyncio.sleep(0.2)
        await s.close()
        assert srv.connections[0].frames[:3] == [2560, 2560, 2560]


async def test_bad_key_is_auth_error_without_retry():
    async with FakeFluxServer(api_key="right") as srv:
        with pytest.raises(STTError) as err:
            await FluxSTT(api_key="wrong", url=srv.url).open(MULAW_8K)
        assert err.value.kind == "auth" and err.value.status == 401
        assert len(srv.connections) == 0


async def test_flux_error_message_is_fatal():
    async with FakeFluxServer(error_after_s=0.2) as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(MULAW_8K)
        await feed(s, 0.5)
        with pytest.raises(STTError, match="injected failure"):
            await collect(s, timeout=3)
        await s.close()


async def test_reconnect_keeps_audio_and_clock():
    async with FakeFluxServer(close_after_s=0.5, utterances=[(1.0, 1.6, "after the drop")]) as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(MULAW_8K)
        feeder = asyncio.create_task(feed(s, 2.4, pace=0.004))
        events = await collect(s, timeout=8)
        await feeder
        await s.close()
        assert s.reconnects == 1 and len(srv.connections) == 2
        assert srv.total_bytes == s.sent_bytes  # nothing buffered was lost
        # the script ran on the second connection's clock; our events are on the call's clock
        offset = srv.connections[0].bytes_received / 8000
        assert events[-1].speech_end == pytest.approx(offset + 1.6, abs=0.05)


async def test_send_never_blocks_on_a_slow_consumer():
    async with FakeFluxServer(utterances=[(0.1, 0.3, "hi")]) as srv:
        s = await FluxSTT(api_key="k", url=srv.url).open(MULAW_8K)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await feed(s, 2.0)  # nobody reads events meanwhile
        assert loop.time() - t0 < 0.2
        await asyncio.sleep(0.3)
        await s.close()


def _test_flux(env_extra: dict, *args: str) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "manage.py", "test_flux", *args], capture_output=True, text=True,
                          timeout=60, env=env)


@pytest.mark.slow
async def test_test_flux_command_against_fake_and_failures():
    async with FakeFluxServer(energy=True, transcript="book an appointment", api_key="good") as srv:
        ok = await asyncio.to_thread(_test_flux, {"DEEPGRAM_API_KEY": "good", "DEEPGRAM_URL": srv.url}, "--fast")
        bad = await asyncio.to_thread(_test_flux, {"DEEPGRAM_API_KEY": "nope", "DEEPGRAM_URL": srv.url})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "StartOfTurn" in ok.stdout and "EndOfTurn: 'book an appointment'" in ok.stdout and "OK:" in ok.stdout
    assert bad.returncode == 3 and bad.stderr.strip().startswith("FAIL: the key was refused")
    nokey = _test_flux({"DEEPGRAM_API_KEY": ""})
    assert nokey.returncode == 2 and "DEEPGRAM_API_KEY is not set" in nokey.stderr
    down = _test_flux({"DEEPGRAM_API_KEY": "k", "DEEPGRAM_URL": "ws://127.0.0.1:9/v2/listen"})
    assert down.returncode == 4 and "unreachable" in down.stderr
    for r in (bad, nokey, down):
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
