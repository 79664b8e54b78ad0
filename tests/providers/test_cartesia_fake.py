"""The fake Cartesia server's own wire behaviour (providers.md §3.5/3.8), seen by a raw client and the SDK.

The pipeline tests and benchmarks rely on these behaviours, so they are pinned here.
"""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest
from cartesia import AsyncCartesia
from websockets.asyncio.client import connect

from aioptions.fakes.cartesia_server import (
    FakeCartesiaServer,
    alaw_decode,
    alaw_encode,
    decode,
    dominant_frequency,
    ulaw_decode,
    ulaw_encode,
    voice_frequency,
)

FMT = {"container": "raw", "encoding": "pcm_mulaw", "sample_rate": 8000}
V1 = {"mode": "id", "id": "v1"}
URL = "/tts/websocket?cartesia_version=2026-03-01"


def req(cid: str, transcript: str, cont: bool, **extra) -> str:
    return json.dumps({"context_id": cid, "model_id": "sonic-3", "voice": V1, "output_format": FMT,
                       "transcript": transcript, "continue": cont, **extra})


async def recv_until(ws, stop_type: str, limit: int = 500) -> list[dict]:
    out = []
    async with asyncio.timeout(5):
        for _ in range(limit):
            msg = json.loads(await ws.recv())
            out.append(msg)
            if msg["type"] in (stop_type, "error"):
                return out
    raise AssertionError(f"no {stop_type} within {limit} messages")


async def test_flush_done_and_done_with_real_audio():
    async with FakeCartesiaServer(ttfb_ms=10, speedup=0) as srv:
        async with connect(f"{srv.ws_url}{URL}") as ws:
            await ws.send(req("c1", "Hello, ", True))
            await ws.send(json.dumps({"context_id": "c1", "transcript": "", "continue": True, "flush": True,
                                      "model_id": "sonic-3", "voice": V1, "output_format": FMT}))
            got = await recv_until(ws, "flush_done")
            assert got[-1] == {"type": "flush_done", "context_id": "c1", "done": False, "flush_done": True,
                               "flush_id": 1, "status_code": 206}
            await ws.send(req("c1", "world.", False))
            got += await recv_until(ws, "done")
        chunks = [m for m in got if m["type"] == "chunk"]
        audio = b"".join(base64.b64decode(m["data"]) for m in chunks)
        assert len(audio) == int(8000 * len("Hello, world.") * 0.06)
        freq = dominant_frequency(decode(audio, "pcm_mulaw"), 8000)
        assert freq == pytest.approx(voice_frequency("v1"), abs=2)
        assert got[-1]["type"] == "done" and srv.contexts["c1"].done_sent
        assert srv.contexts["c1"].continues == [True, True, False]


@pytest.mark.parametrize(("fmt", "needle"), [
    ({"container": "wav", "encoding": "pcm_mulaw", "sample_rate": 8000}, "container"),
    ({"container": "raw", "encoding": "opus", "sample_rate": 8000}, "encoding"),
    ({"container": "raw", "encoding": "pcm_mulaw", "sample_rate": 11025}, "sample_rate")])
async def test_invalid_output_format_is_an_inband_400(fmt, needle):
    async with FakeCartesiaServer() as srv:
        async with connect(f"{srv.ws_url}{URL}") as ws:
            await ws.send(json.dumps({"context_id": "x", "model_id": "sonic-3", "voice": V1,
                                      "output_format": fmt, "transcript": "Hi", "continue": False}))
            [err] = await recv_until(ws, "error")
    assert err["status_code"] == 400 and needle in err["message"] and err["context_id"] == "x"


async def test_input_after_continue_false_is_rejected():
    async with FakeCartesiaServer(ttfb_ms=0, speedup=0) as srv:
        async with connect(f"{srv.ws_url}{URL}") as ws:
            await ws.send(req("c", "One.", False))
            await recv_until(ws, "done")
            await ws.send(req("c", "Two.", True))
            [err] = await recv_until(ws, "error")
    assert err["error_code"] == "context_closed"


async def test_voices_endpoint_through_the_sdk():
    async with FakeCartesiaServer(ttfb_ms=0, speedup=0) as srv:
        async with connect(f"{srv.ws_url}{URL}") as ws:
            await ws.send(req("c", "Hi.", False))
            await recv_until(ws, "done")
        client = AsyncCartesia(api_key="k", base_url=srv.http_url, websocket_base_url=srv.ws_url,
                               max_retries=0)
        voices = [v.id async for v in client.voices.list(limit=10)]
        await client.close()
    assert voices == ["v1"]  # the SDK stops paging on the empty page after starting_after
    assert any("starting_after=" in p for p in srv.http_requests)


def test_g711_twins_round_trip():
    pcm = (np.sin(np.arange(800) / 5) * 12000).astype(np.int16)
    for enc, dec in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        back = dec(enc(pcm)).astype(np.int32)
        assert np.max(np.abs(back - pcm)) <= max(16, int(np.max(np.abs(pcm)) * 0.07))


@pytest.mark.parametrize("version", [None, "2026-08-14", "2099-01-01"])
async def test_undocumented_or_missing_version_is_refused_at_the_handshake(version):
    from websockets.exceptions import InvalidStatus

    async with FakeCartesiaServer() as srv:
        url = f"{srv.ws_url}/tts/websocket" + (f"?cartesia_version={version}" if version else "")
        with pytest.raises(InvalidStatus) as info:
            async with connect(url):
                pass
    assert info.value.response.status_code == 400


@pytest.mark.parametrize(("message", "needle"), [
    ({"voice": "v1"}, "voice"),  # a bare id string is not the documented form
    ({"voice": {"id": "v1"}}, "voice"),
    ({"voice": {"mode": "id", "id": "v1", "embedding": [0.1]}}, "voice"),
    ({"speed_hint": 1}, "unknown fields"),
])
async def test_undocumented_request_shapes_are_an_inband_400(message, needle):
    async with FakeCartesiaServer() as srv:
        async with connect(f"{srv.ws_url}{URL}") as ws:
            await ws.send(json.dumps({"context_id": "x", "model_id": "sonic-3", "voice": V1, "output_format": FMT,
                                      "transcript": "Hi", "continue": False, **message}))
            [err] = await recv_until(ws, "error")
    assert err["status_code"] == 400 and needle in err["message"]
