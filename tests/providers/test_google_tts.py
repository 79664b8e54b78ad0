"""GoogleTTS through google-cloud-texttospeech's async client against the fake gRPC server (insecure)."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from aioptions.fakes.cartesia_server import decode, dominant_frequency, voice_frequency
from aioptions.fakes.google_tts_server import FakeGoogleTTSServer, wav_header
from aioptions.providers.base import ALAW_8K, MULAW_8K, PCM_16K, AudioFormat, TTSError
from aioptions.providers.google_tts import GoogleTTS, language_of, strip_riff
from tests.eventually import eventually

VOICE = "en-US-Chirp3-HD-Kore"


@pytest.fixture(autouse=True)
def no_adc(monkeypatch):
    """The insecure endpoint must work with no credentials anywhere."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)


@pytest.fixture
async def fake():
    async with FakeGoogleTTSServer(ttfb_ms=60, speedup=0) as srv:
        yield srv


def make_tts(srv: FakeGoogleTTSServer, voice: str = VOICE, **kw) -> GoogleTTS:
    return GoogleTTS(voice_id=voice, insecure_endpoint=srv.endpoint, **kw)


async def speak(tts: GoogleTTS, pieces: list[str], fmt: AudioFormat = MULAW_8K):
    utt = await tts.utterance(fmt)
    for p in pieces:
        await utt.push(p)
    await utt.finish()
    async with asyncio.timeout(10):
        chunks = [c async for c in utt.audio()]
    return utt, chunks


async def test_streaming_mulaw_8k_config_first_then_sentences(fake):
    tts = make_tts(fake)
    utt, chunks = await speak(tts, ["Hello ", "there, how ", "are you? I am", " fine"])
    await tts.aclose()
    [rec] = fake.streams
    assert (rec.voice, rec.language_code, rec.encoding, rec.sample_rate) == (VOICE, "en-US", "mulaw", 8000)
    assert rec.texts == ["Hello there, how are you?", "I am fine"] == utt.sent_texts
    assert rec.status == "ok"
    assert "gapic/" in rec.metadata.get("x-goog-api-client", "")
    audio = b"".join(chunks)
    assert len(audio) == rec.audio_bytes == sum(int(8000 * len(t) * 0.06) for t in rec.texts)
    assert dominant_frequency(decode(audio, "mulaw"), 8000) == pytest.approx(voice_frequency(VOICE), abs=2)


@pytest.mark.parametrize(("fmt", "enc"), [(PCM_16K, "linear16"), (ALAW_8K, "alaw")])
async def test_streaming_other_formats(fake, fmt, enc):
    tts = make_tts(fake, voice="en-GB-Chirp3-HD-Charon")
    _, chunks = await speak(tts, ["Good morning."], fmt)
    await tts.aclose()
    [rec] = fake.streams
    assert (rec.encoding, rec.sample_rate, rec.language_code) == (enc, fmt.sample_rate, "en-GB")
    audio = b"".join(chunks)
    assert not audio.startswith(b"RIFF")
    pcm = decode(audio, enc)
    assert len(pcm) == int(fmt.sample_rate * len("Good morning.") * 0.06)
    expected = voice_frequency("en-GB-Chirp3-HD-Charon")
    assert dominant_frequency(pcm, fmt.sample_rate) == pytest.approx(expected, abs=2)


async def test_ttfb_is_measured_from_first_push_to_first_chunk_arrival():
    async with FakeGoogleTTSServer(ttfb_ms=150, speedup=0) as srv:
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


async def test_partial_text_is_released_after_max_hold(fake):
    """A clause without a sentence end is not held forever: audio starts before finish()."""
    tts = make_tts(fake, max_hold_s=0.15)
    utt = await tts.utterance(MULAW_8K)
    await utt.push("well, let me think")
    async with asyncio.timeout(3):
        first = await anext(aiter(utt.audio()))
    assert first and fake.streams[0].texts == ["well, let me think"]
    await utt.finish()
    async with asyncio.timeout(3):
        _ = [c async for c in utt.audio()]
    await tts.aclose()


async def test_idle_stream_is_aborted_by_server_and_mapped():
    """The real service aborts after 5 s without input; the fake does it after idle_abort_s."""
    async with FakeGoogleTTSServer(idle_abort_s=0.3) as srv:
        tts = make_tts(srv, max_hold_s=5.0)
        utt = await tts.utterance(MULAW_8K)
        await utt.push("no sentence end and no finish")
        with pytest.raises(TTSError) as ei:
            async with asyncio.timeout(5):
                _ = [c async for c in utt.audio()]
        assert ei.value.kind == "server" and "without input" in str(ei.value)
        assert srv.streams[0].status == "aborted:ABORTED"
        # the request iterator (grpc's poller task) ends too: nothing leaks
        await eventually(lambda: not [t for t in asyncio.all_tasks()
                                      if "_consume_request_iterator" in repr(t.get_coro())])
        await tts.aclose()


async def test_cancel_stops_audio_and_cancels_the_call():
    async with FakeGoogleTTSServer(ttfb_ms=20, speedup=1.0) as srv:
        tts = make_tts(srv)
        utt = await tts.utterance(MULAW_8K)
        await utt.push("This is a long answer that would take several seconds to speak aloud.")
        await utt.finish()
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
            n = len(got)
            await task  # the iterator ends by itself, yielding nothing that was in flight
        assert len(got) == n
        await eventually(lambda: srv.streams[0].status != "open")
        assert srv.streams[0].status == "cancelled"
        assert srv.streams[0].audio_bytes < 8000 * 4  # nowhere near the whole text
        await utt.cancel()  # idempotent
        await tts.aclose()


@pytest.mark.parametrize(("code", "kind"), [
    (grpc.StatusCode.PERMISSION_DENIED, "auth"), (grpc.StatusCode.UNAUTHENTICATED, "auth"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limit"), (grpc.StatusCode.INVALID_ARGUMENT, "bad_request"),
    (grpc.StatusCode.UNAVAILABLE, "server"), (grpc.StatusCode.ABORTED, "server"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "timeout")])
async def test_stream_errors_map_to_kinds(fake, code, kind):
    fake.fail_with = code
    tts = make_tts(fake)
    utt = await tts.utterance(MULAW_8K)
    await utt.push("Hello.")
    await utt.finish()
    with pytest.raises(TTSError) as ei:
        async with asyncio.timeout(5):
            _ = [c async for c in utt.audio()]
    assert ei.value.kind == kind and ei.value.provider == "google", str(ei.value)
    await tts.aclose()


async def test_per_voice_failure_and_other_voice_fine(fake):
    fake.fail_voices["en-US-Chirp3-HD-Puck"] = grpc.StatusCode.PERMISSION_DENIED
    bad, good = make_tts(fake, voice="en-US-Chirp3-HD-Puck"), make_tts(fake)
    with pytest.raises(TTSError) as ei:
        await speak(bad, ["Hi."])
    assert ei.value.kind == "auth" and ei.value.status == 403
    _, chunks = await speak(good, ["Hi."])
    assert chunks
    assert fake.requests_by_voice == {"en-US-Chirp3-HD-Puck": 1, VOICE: 1}
    await bad.aclose()
    await good.aclose()


async def test_synthesize_strips_wav_header(fake):
    tts = make_tts(fake)
    text = "Hi, this is Acme Dental calling about your appointment."
    mulaw = await tts.synthesize(text, MULAW_8K)
    pcm16 = await tts.synthesize(text, PCM_16K)
    await tts.aclose()
    assert not mulaw.startswith(b"RIFF") and len(mulaw) == int(8000 * len(text) * 0.06)
    assert len(pcm16) == int(16000 * len(text) * 0.06) * 2
    freq = dominant_frequency(decode(pcm16, "linear16"), 16000)
    assert freq == pytest.approx(voice_frequency(VOICE), abs=2)
    formats = [(r["encoding"], r["sample_rate"]) for r in fake.synth_requests]
    assert formats == [("MULAW", 8000), ("LINEAR16", 16000)]
    assert fake.streams == []


async def test_synthesize_error_maps(fake):
    fake.fail_with = grpc.StatusCode.RESOURCE_EXHAUSTED
    tts = make_tts(fake)
    with pytest.raises(TTSError) as ei:
        await tts.synthesize("Hello.", MULAW_8K)
    assert ei.value.kind == "rate_limit" and ei.value.status == 429
    await tts.aclose()


async def test_finish_without_text_opens_no_stream(fake):
    tts = make_tts(fake)
    utt = await tts.utterance(MULAW_8K)
    await utt.finish()
    assert [c async for c in utt.audio()] == []
    assert fake.streams == []
    await tts.aclose()


def test_client_is_built_in_each_running_loop():
    """Built outside any loop, then used from two event loops (e.g. two previews): works in both,
    because the grpc.aio channel is rebuilt for the loop that runs it."""
    tts = GoogleTTS(voice_id=VOICE, insecure_endpoint="127.0.0.1:1")

    async def preview() -> int:
        async with FakeGoogleTTSServer(ttfb_ms=10, speedup=0) as srv:
            tts.insecure_endpoint = srv.endpoint  # a new fake (new port) per loop
            return len(await tts.synthesize("Hi.", MULAW_8K))

    assert asyncio.run(preview()) == int(8000 * 3 * 0.06)
    first_client = tts._client
    assert asyncio.run(preview()) == int(8000 * 3 * 0.06)
    assert tts._client is not first_client


async def test_missing_credentials_file_is_auth_error(tmp_path):
    tts = GoogleTTS(voice_id=VOICE, credentials_path=str(tmp_path / "missing.json"))
    with pytest.raises(TTSError) as ei:
        await tts.synthesize("Hello.", MULAW_8K)
    assert ei.value.kind == "auth" and "GOOGLE_APPLICATION_CREDENTIALS" in str(ei.value)
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "service_account"}')
    tts = GoogleTTS(voice_id=VOICE, credentials_path=str(bad))
    with pytest.raises(TTSError) as ei:
        await (await tts.utterance(MULAW_8K)).push("Hello.")
    assert ei.value.kind == "auth"


def test_voice_and_header_helpers():
    assert language_of("en-US-Chirp3-HD-Kore") == "en-US"
    assert language_of("cmn-CN-Chirp3-HD-Leda") == "cmn-CN"
    with pytest.raises(ValueError):
        GoogleTTS(voice_id="Kore")
    with pytest.raises(ValueError):
        GoogleTTS(voice_id=VOICE, speaking_rate=3.0)
    body = b"\x01\x02\x03"
    from google.cloud import texttospeech_v1 as tts

    assert strip_riff(wav_header(tts.AudioEncoding.MULAW, 8000, 3) + body) == body
    assert strip_riff(body) == body
    assert strip_riff(b"RIFF\x00\x00\x00\x00WAVE") == b""
