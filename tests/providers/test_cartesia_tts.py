"""CartesiaTTS through the official cartesia 4.x SDK against the fake Cartesia WebSocket server."""

from __future__ import annotations

import asyncio
import time

import pytest

from aioptions.fakes.cartesia_server import FakeCartesiaServer, decode, dominant_frequency, voice_frequency
from aioptions.providers.base import ALAW_8K, MULAW_8K, PCM_16K, AudioFormat, TTSError
from aioptions.providers.cartesia_tts import CartesiaTTS, kind_for_status, output_format
from tests.eventually import eventually

VOICE = "a0e99841-438c-4a64-b679-ae501e7d6091"
KEY = "sk_car_test_key"


@pytest.fixture
async def fake():
    async with FakeCartesiaServer(ttfb_ms=60, speedup=0) as srv:
        yield srv


def make_tts(srv: FakeCartesiaServer, voice: str = VOICE, **kw) -> CartesiaTTS:
    return CartesiaTTS(api_key=KEY, voice_id=voice, base_url=srv.http_url, ws_url=srv.ws_url, **kw)


async def speak(tts: CartesiaTTS, pieces: list[str], fmt: AudioFormat = MULAW_8K):
    utt = await tts.utterance(fmt)
    for p in pieces:
        await utt.push(p)
    await utt.finish()
    async with asyncio.timeout(10):
        chunks = [c async for c in utt.audio()]
    return utt, chunks


async def test_pieces_are_continue_messages_on_one_context(fake):
    tts = make_tts(fake)
    utt, chunks = await speak(tts, ["Hello there, ", "how are you ", "today?"])
    await tts.aclose()
    msgs = fake.messages_for(utt.context_id)
    # every piece is followed by a flush, which marks where its audio ends
    assert [m["transcript"] for m in msgs] == ["Hello there, ", "", "how are you ", "", "today?", "", ""]
    assert [m.get("flush", False) for m in msgs] == [False, True, False, True, False, True, False]
    assert [m["continue"] for m in msgs] == [True] * 6 + [False]
    first = msgs[0]
    assert first["model_id"] == "sonic-3" and first["language"] == "en"
    assert all(m["voice"] == {"mode": "id", "id": VOICE} for m in msgs)  # the documented voice specifier
    assert first["output_format"] == {"container": "raw", "encoding": "pcm_mulaw", "sample_rate": 8000}
    assert first["max_buffer_delay_ms"] == 200
    documented = {"context_id", "model_id", "transcript", "voice", "output_format", "language", "continue",
                  "max_buffer_delay_ms", "flush"}
    assert all(set(m) <= documented for m in msgs), [set(m) - documented for m in msgs]
    assert {m["context_id"] for _, m in fake.messages} == {utt.context_id}
    hs = fake.handshakes[0]
    assert hs["authorization"] == f"Bearer {KEY}" and hs["cartesia_version"] == "2026-03-01"
    assert hs["path"].startswith("/tts/websocket")
    assert chunks and fake.contexts[utt.context_id].done_sent


async def test_piece_ends_mark_where_each_pieces_audio_ends(fake):
    tts = make_tts(fake)
    pieces = ["Hello there, ", "how are you ", "today?"]
    utt, chunks = await speak(tts, pieces)
    await tts.aclose()
    per_char = int(8000 * fake.ms_per_char / 1000)
    ends = [sum(len(p) for p in pieces[: i + 1]) * per_char for i in range(3)]
    assert utt.marks_pieces and utt.piece_ends == ends and len(b"".join(chunks)) == ends[-1]


@pytest.mark.parametrize("fmt", [MULAW_8K, ALAW_8K, PCM_16K, AudioFormat("linear16", 24000)])
async def test_audio_in_requested_encoding_and_rate(fake, fmt):
    tts = make_tts(fake)
    text = "One two three four five."
    _, chunks = await speak(tts, [text], fmt)
    await tts.aclose()
    audio = b"".join(chunks)
    ctx = next(iter(fake.contexts.values()))
    expected_samples = int(fmt.sample_rate * len(text) * fake.ms_per_char / 1000)
    width = 2 if fmt.encoding == "linear16" else 1
    assert len(audio) == expected_samples * width == ctx.audio_bytes_sent
    pcm = decode(audio, {"mulaw": "pcm_mulaw", "alaw": "pcm_alaw", "linear16": "pcm_s16le"}[fmt.encoding])
    assert dominant_frequency(pcm, fmt.sample_rate) == pytest.approx(voice_frequency(VOICE), abs=2)
    assert ctx.output_format["sample_rate"] == fmt.sample_rate


async def test_ttfb_is_measured_from_first_push_to_first_chunk_arrival():
    async with FakeCartesiaServer(ttfb_ms=150, speedup=0) as srv:
        tts = make_tts(srv)
        utt, chunks = await speak(tts, ["Short reply."])
        assert chunks and utt.first_audio_at > utt.requested_at
        assert utt.ttfb_ms >= 140  # the fake's 150 ms TTFB: a lower bound, load only adds to it
        # a consumer that starts iterating late does not inflate TTFB: it is stamped on arrival
        late = await tts.utterance(MULAW_8K)
        await late.push("Another reply.")
        await late.finish()
        await eventually(lambda: late.first_audio_at is not None)  # stamped with nobody reading yet
        consumer_started = time.monotonic()
        async with asyncio.timeout(5):
            assert [c async for c in late.audio()]
        assert late.first_audio_at < consumer_started and late.ttfb_ms >= 140
        await tts.aclose()


async def test_cancel_stops_audio_and_sends_cancel():
    async with FakeCartesiaServer(ttfb_ms=20, speedup=1.0) as srv:  # real-time pacing: plenty still to come
        tts = make_tts(srv)
        utt = await tts.utterance(MULAW_8K)
        await utt.push("This is a long answer that would take several seconds to speak aloud. ")
        got: list[bytes] = []
        two = asyncio.Event()

        async def consume() -> None:
            async for chunk in utt.audio():
                got.append(chunk)
                if len(got) == 2:
                    two.set()

        task = asyncio.create_task(consume())
        async with asyncio.timeout(5):
            await two.wait()
            await utt.cancel()
            n_at_cancel = len(got)
            await task  # the iterator ends by itself; chunks already in flight are dropped
        assert len(got) == n_at_cancel
        assert utt.cancelled
        cancels = [m for m in srv.messages_for(utt.context_id) if m.get("cancel")]
        assert cancels == [{"context_id": utt.context_id, "cancel": True}]
        ctx = srv.contexts[utt.context_id]
        assert ctx.cancelled and not ctx.done_sent
        assert ctx.chunks_sent < 70 * 60 / 40  # far less than the whole text
        await utt.cancel()  # idempotent
        await utt.push("ignored after barge-in")
        assert [c async for c in utt.audio()] == []
        await tts.aclose()


async def test_utterances_reuse_one_connection(fake):
    tts = make_tts(fake)
    u1, c1 = await speak(tts, ["First turn."])
    u2, c2 = await speak(tts, ["Second turn."], PCM_16K)
    # two contexts at once on the same socket
    (u3, c3), (u4, c4) = await asyncio.gather(speak(tts, ["Third."]), speak(tts, ["Fourth one."]))
    await tts.aclose()
    assert fake.accepted_handshakes == 1 and tts.connections_opened == 1
    assert len({u1.context_id, u2.context_id, u3.context_id, u4.context_id}) == 4
    assert all([c1, c2, c3, c4])
    assert len(b"".join(c4)) == int(8000 * len("Fourth one.") * 0.06)
    assert {ctx.conn_index for ctx in fake.contexts.values()} == {0}
    assert fake.requests_by_voice[VOICE] == 4


async def test_handshake_401_is_auth_error():
    async with FakeCartesiaServer(api_key="the-right-key") as srv:
        tts = make_tts(srv)  # sends KEY, which is wrong
        with pytest.raises(TTSError) as ei:
            await tts.utterance(MULAW_8K)
        assert ei.value.kind == "auth" and ei.value.status == 401 and ei.value.provider == "cartesia"
        assert KEY not in str(ei.value)
        assert srv.handshakes[0]["status"] == "401"
        await tts.aclose()


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit"), (500, "server"), (403, "auth")])
async def test_handshake_rejections_map_to_kinds(status, kind):
    async with FakeCartesiaServer(handshake_status=status) as srv:
        tts = make_tts(srv)
        with pytest.raises(TTSError) as ei:
            await tts.utterance(MULAW_8K)
        assert (ei.value.kind, ei.value.status) == (kind, status)
        await tts.aclose()


@pytest.mark.parametrize(("status", "code", "kind"), [
    (400, "invalid_voice", "bad_request"), (429, "concurrency_limited", "rate_limit"),
    (500, "internal_error", "server"), (401, "unauthorized", "auth"), (404, "voice_not_found", "not_found")])
async def test_inband_error_maps_to_kind_and_connection_survives(fake, status, code, kind):
    fake.error_voices[VOICE] = (status, code, "injected")
    tts = make_tts(fake)
    utt = await tts.utterance(MULAW_8K)
    await utt.push("Hello.")
    await utt.finish()
    with pytest.raises(TTSError) as ei:
        async with asyncio.timeout(5):
            _ = [c async for c in utt.audio()]
    assert (ei.value.kind, ei.value.status) == (kind, status)
    assert code in str(ei.value)
    fake.error_voices.clear()
    _, chunks = await speak(tts, ["Now it works."])
    assert chunks and tts.connections_opened == 1
    await tts.aclose()


async def test_close_mid_stream_raises_closed_then_reconnects():
    async with FakeCartesiaServer(close_after_chunks=3, speedup=0) as srv:
        tts = make_tts(srv)
        utt = await tts.utterance(MULAW_8K)
        await utt.push("A sentence long enough for many chunks of audio.")
        await utt.finish()
        got = []
        with pytest.raises(TTSError) as ei:
            async with asyncio.timeout(5):
                async for c in utt.audio():
                    got.append(c)
        assert ei.value.kind == "closed" and len(got) == 3
        srv.close_after_chunks = None
        _, chunks = await speak(tts, ["Back again."])
        assert chunks and tts.connections_opened == 2 and srv.accepted_handshakes == 2
        await tts.aclose()


async def test_no_audio_after_finish_times_out():
    async with FakeCartesiaServer(ttfb_ms=5000) as srv:
        tts = make_tts(srv, idle_timeout_s=0.3)
        utt = await tts.utterance(MULAW_8K)
        await utt.push("Hello.")
        await utt.finish()
        with pytest.raises(TTSError) as ei:
            async with asyncio.timeout(5):
                _ = [c async for c in utt.audio()]
        assert ei.value.kind == "timeout"
        await tts.aclose()


async def test_finish_without_text_sends_nothing(fake):
    tts = make_tts(fake)
    utt = await tts.utterance(MULAW_8K)
    await utt.finish()
    assert [c async for c in utt.audio()] == []
    assert fake.messages == [] and utt.ttfb_ms is None
    await tts.aclose()


async def test_synthesize_for_previews(fake):
    tts = make_tts(fake)
    text = "Hi, this is Acme Dental calling about your appointment."
    audio = await tts.synthesize(text, PCM_16K)
    assert len(audio) == int(16000 * len(text) * 0.06) * 2
    freq = dominant_frequency(decode(audio, "pcm_s16le"), 16000)
    assert freq == pytest.approx(voice_frequency(VOICE), abs=2)
    ctx = next(iter(fake.contexts.values()))
    assert ctx.transcripts == [text, "", ""] and ctx.continues == [True, True, False]  # text, flush, end
    with pytest.raises(ValueError):
        await tts.synthesize("   ", PCM_16K)
    with pytest.raises(ValueError):
        await tts.synthesize("x" * 2001, PCM_16K)
    await tts.aclose()


async def test_synthesize_is_bounded_in_time():
    async with FakeCartesiaServer(ttfb_ms=3000) as srv:
        tts = make_tts(srv, synth_timeout_s=0.3)
        with pytest.raises(TTSError) as ei:
            await tts.synthesize("Hello.", MULAW_8K)
        assert ei.value.kind == "timeout"
        ctx = next(iter(srv.contexts.values()))
        await eventually(lambda: ctx.cancelled)  # the abandoned generation was cancelled on the server
        await tts.aclose()


async def test_aclose_closes_the_socket_and_ends_live_utterances(fake):
    tts = make_tts(fake)
    utt = await tts.utterance(MULAW_8K)
    await tts.aclose()
    assert [c async for c in utt.audio()] == []
    with pytest.raises(TTSError) as ei:
        await tts.utterance(MULAW_8K)
    assert ei.value.kind == "closed"
    await tts.aclose()  # idempotent


async def test_connection_refused_is_connection_error():
    srv = await FakeCartesiaServer().start()
    url = srv.ws_url
    await srv.stop()
    tts = CartesiaTTS(api_key=KEY, voice_id=VOICE, base_url=url.replace("ws", "http"), ws_url=url)
    with pytest.raises(TTSError) as ei:
        await tts.utterance(MULAW_8K)
    assert ei.value.kind == "connection"
    await tts.aclose()


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        CartesiaTTS(api_key="", voice_id=VOICE)
    with pytest.raises(ValueError):
        CartesiaTTS(api_key=KEY, voice_id="")
    with pytest.raises(ValueError):
        CartesiaTTS(api_key=KEY, voice_id=VOICE, max_buffer_delay_ms=6000)
    with pytest.raises(ValueError):
        output_format(AudioFormat("mulaw", 11025))
    assert KEY not in repr(CartesiaTTS(api_key=KEY, voice_id=VOICE))
    assert [kind_for_status(s) for s in (401, 403, 429, 404, 400, 503, None)] == [
        "auth", "auth", "rate_limit", "not_found", "bad_request", "server", "other"]
