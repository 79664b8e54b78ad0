"""A fake Google Cloud Text-to-Speech gRPC server on 127.0.0.1 (providers.md §4.2-4.3).

Why: the Google client is tested through the official ``google-cloud-texttospeech`` async client over
an insecure channel, and the pipeline tests and benchmarks need a Chirp-like TTS offline. It serves
``StreamingSynthesize`` (config first, then text; audio per text after ``ttfb_ms``; the real service's
5 s input-idle ABORTED), ``SynthesizeSpeech`` (with the WAV header the real one adds to LINEAR16, MULAW
and ALAW) and ``ListVoices``. Audio is a voice-dependent tone (see aioptions.fakes.cartesia_server).

    async with FakeGoogleTTSServer() as srv:
        tts = GoogleTTS(voice_id="en-US-Chirp3-HD-Kore", insecure_endpoint=srv.endpoint)
"""

from __future__ import annotations

import asyncio
import collections
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.cloud import texttospeech_v1 as tts

from aioptions.fakes.cartesia_server import encode, tone, voice_frequency

SERVICE = "google.cloud.texttospeech.v1.TextToSpeech"
_ENC = tts.AudioEncoding
_STREAM_ENCODINGS = {_ENC.MULAW: "mulaw", _ENC.ALAW: "alaw", _ENC.PCM: "linear16"}
_BATCH_ENCODINGS = {**_STREAM_ENCODINGS, _ENC.LINEAR16: "linear16"}
_WAV_FORMAT_TAG = {_ENC.LINEAR16: 1, _ENC.MULAW: 7, _ENC.ALAW: 6}
_DEFAULT_RATE = 24000
_VOICES = ("Aoede", "Charon", "Fenrir", "Kore", "Leda", "Orus", "Puck", "Zephyr")
IDLE_MESSAGE = ("Stream aborted due to long duration elapsed without input sent. "
                "Input must be sent continuously, at least every 5s seconds.")


@dataclass
class FakeStream:
    """One StreamingSynthesize call as the fake saw it (the request log tests assert on)."""

    voice: str = ""
    language_code: str = ""
    encoding: str = ""
    sample_rate: int = 0
    texts: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    status: str = "open"  # open | ok | cancelled | aborted:<CODE>
    audio_bytes: int = 0
    chunks: int = 0
    first_input_at: float | None = None
    first_audio_at: float | None = None


def wav_header(encoding: tts.AudioEncoding, rate: int, data_len: int) -> bytes:
    """The 44-byte RIFF/WAVE header Google puts on LINEAR16/MULAW/ALAW SynthesizeSpeech audio."""
    width = 2 if encoding == _ENC.LINEAR16 else 1
    fmt = struct.pack("<HHIIHH", _WAV_FORMAT_TAG[encoding], 1, rate, rate * width, width, 8 * width)
    return (b"RIFF" + struct.pack("<I", 36 + data_len) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", data_len))


class FakeGoogleTTSServer:
    """grpc.aio server with generic handlers and proto-plus (de)serializers; see the module docstring.

    Error injection (attributes, changeable while running):
    - ``fail_with``: a ``grpc.StatusCode`` every call aborts with (after a valid first request).
    - ``fail_voices``: ``{voice_name: grpc.StatusCode}`` for one voice only.
    - ``idle_abort_s``: ABORTED when a stream gets no request for this long (the real limit is 5 s).
    """

    def __init__(self, *, ttfb_ms: float = 90.0, ms_per_char: float = 60.0, max_ms_per_text: float = 8000.0,
                 chunk_ms: float = 40.0, speedup: float = 4.0, fail_with: grpc.StatusCode | None = None,
                 fail_voices: dict[str, grpc.StatusCode] | None = None, idle_abort_s: float = 5.0) -> None:
        self.ttfb_ms = ttfb_ms
        self.ms_per_char = ms_per_char
        self.max_ms_per_text = max_ms_per_text
        self.chunk_ms = chunk_ms
        self.speedup = speedup  # audio seconds per wall second; <= 0 means as fast as possible
        self.fail_with = fail_with
        self.fail_voices: dict[str, grpc.StatusCode] = dict(fail_voices or {})
        self.idle_abort_s = idle_abort_s
        self.streams: list[FakeStream] = []
        self.synth_requests: list[dict[str, Any]] = []
        self.requests_by_voice: collections.Counter[str] = collections.Counter()  # stream + unary calls
        self.list_voices_requests = 0
        self.port = 0
        self._server: grpc.aio.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> FakeGoogleTTSServer:
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "ListVoices": grpc.unary_unary_rpc_method_handler(
                self._list_voices, request_deserializer=tts.ListVoicesRequest.deserialize,
                response_serializer=tts.ListVoicesResponse.serialize),
            "SynthesizeSpeech": grpc.unary_unary_rpc_method_handler(
                self._synthesize, request_deserializer=tts.SynthesizeSpeechRequest.deserialize,
                response_serializer=tts.SynthesizeSpeechResponse.serialize),
            "StreamingSynthesize": grpc.stream_stream_rpc_method_handler(
                self._stream, request_deserializer=tts.StreamingSynthesizeRequest.deserialize,
                response_serializer=tts.StreamingSynthesizeResponse.serialize),
        })
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None

    async def __aenter__(self) -> FakeGoogleTTSServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- handlers ----------------------------------------------------------------------------------
    async def _list_voices(self, request: tts.ListVoicesRequest, context: grpc.aio.ServicerContext
                           ) -> tts.ListVoicesResponse:
        self.list_voices_requests += 1
        lang = request.language_code or "en-US"
        return tts.ListVoicesResponse(voices=[
            tts.Voice(language_codes=[lang], name=f"{lang}-Chirp3-HD-{v}",
                      natural_sample_rate_hertz=_DEFAULT_RATE) for v in _VOICES])

    async def _synthesize(self, request: tts.SynthesizeSpeechRequest, context: grpc.aio.ServicerContext
                          ) -> tts.SynthesizeSpeechResponse:
        voice, cfg = request.voice.name, request.audio_config
        self.synth_requests.append({"voice": voice, "language_code": request.voice.language_code,
                                    "text": request.input.text, "encoding": cfg.audio_encoding.name,
                                    "sample_rate": cfg.sample_rate_hertz})
        self.requests_by_voice[voice] += 1
        if not request.input.text:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "input.text is required")
        if cfg.audio_encoding not in _BATCH_ENCODINGS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "fake supports LINEAR16, MULAW, ALAW, PCM")
        await self._maybe_fail(voice, context)
        await asyncio.sleep(self.ttfb_ms / 1000.0)
        rate = cfg.sample_rate_hertz or _DEFAULT_RATE
        n = int(rate * min(len(request.input.text) * self.ms_per_char, self.max_ms_per_text) / 1000.0)
        audio = encode(tone(voice_frequency(voice), n, rate), _BATCH_ENCODINGS[cfg.audio_encoding])
        if cfg.audio_encoding in _WAV_FORMAT_TAG:
            audio = wav_header(cfg.audio_encoding, rate, len(audio)) + audio
        return tts.SynthesizeSpeechResponse(audio_content=audio)

    async def _stream(self, requests: Any, context: grpc.aio.ServicerContext) -> Any:
        rec = FakeStream(metadata={k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
        self.streams.append(rec)
        it = requests.__aiter__()
        try:
            first = await asyncio.wait_for(it.__anext__(), self.idle_abort_s)
        except TimeoutError:
            await self._abort(rec, context, grpc.StatusCode.ABORTED, IDLE_MESSAGE)
        except StopAsyncIteration:
            await self._abort(rec, context, grpc.StatusCode.INVALID_ARGUMENT, "no StreamingSynthesizeConfig")
        if "streaming_config" not in first:
            await self._abort(rec, context, grpc.StatusCode.INVALID_ARGUMENT,
                              "the first request must carry only streaming_config")
        cfg = first.streaming_config
        rec.voice, rec.language_code = cfg.voice.name, cfg.voice.language_code
        enc = cfg.streaming_audio_config.audio_encoding
        rec.sample_rate = cfg.streaming_audio_config.sample_rate_hertz or _DEFAULT_RATE
        self.requests_by_voice[rec.voice] += 1
        if "Chirp3-HD" not in rec.voice:
            await self._abort(rec, context, grpc.StatusCode.INVALID_ARGUMENT,
                              "streaming needs a Chirp 3 HD voice")
        if enc not in _STREAM_ENCODINGS:
            await self._abort(rec, context, grpc.StatusCode.INVALID_ARGUMENT,
                              f"streaming encoding {enc.name} unsupported by the fake (MULAW, ALAW, PCM)")
        rec.encoding = _STREAM_ENCODINGS[enc]
        if self.fail_voices.get(rec.voice, self.fail_with) is not None:
            # Read what the client is still sending before failing: a grpc.aio client whose write races
            # with the server's status reports INTERNAL "Internal error from Core" instead of the status.
            await self._drain(it, rec)
            await self._maybe_fail(rec.voice, context, rec)
        await context.send_initial_metadata(())

        texts: asyncio.Queue[Any] = asyncio.Queue()
        reader = asyncio.create_task(self._read_inputs(it, texts, rec))
        freq, rate, samples, t0 = voice_frequency(rec.voice), rec.sample_rate, 0, None
        try:
            while True:
                item = await texts.get()
                if item is None:
                    rec.status = "ok"
                    return
                if isinstance(item, tuple):
                    await self._abort(rec, context, *item)
                if t0 is None:
                    assert rec.first_input_at is not None
                    due = rec.first_input_at + self.ttfb_ms / 1000.0
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    t0 = time.monotonic()
                total = int(rate * min(len(item) * self.ms_per_char, self.max_ms_per_text) / 1000.0)
                step, end = max(1, int(rate * self.chunk_ms / 1000.0)), samples + total
                while samples < end:
                    n = min(step, end - samples)
                    if self.speedup > 0:
                        await asyncio.sleep(max(0.0, t0 + samples / rate / self.speedup - time.monotonic()))
                    data = encode(tone(freq, n, rate, samples), rec.encoding)
                    samples += n
                    rec.chunks += 1
                    rec.audio_bytes += len(data)
                    rec.first_audio_at = rec.first_audio_at or time.monotonic()
                    yield tts.StreamingSynthesizeResponse(audio_content=data)
        except asyncio.CancelledError:
            rec.status = "cancelled"
            raise
        finally:
            reader.cancel()

    async def _read_inputs(self, it: Any, texts: asyncio.Queue[Any], rec: FakeStream) -> None:
        """Requests -> texts queue; None at half-close; a (code, message) tuple for a protocol error."""
        while True:
            try:
                req = await asyncio.wait_for(it.__anext__(), self.idle_abort_s)
            except TimeoutError:
                texts.put_nowait((grpc.StatusCode.ABORTED, IDLE_MESSAGE))
                return
            except StopAsyncIteration:
                texts.put_nowait(None)
                return
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                return
            if "input" not in req or "streaming_config" in req:
                texts.put_nowait((grpc.StatusCode.INVALID_ARGUMENT, "later requests must carry only input"))
                return
            text = req.input.text or req.input.markup
            rec.texts.append(text)
            if text:
                rec.first_input_at = rec.first_input_at or time.monotonic()
                texts.put_nowait(text)

    async def _drain(self, it: Any, rec: FakeStream, idle_s: float = 0.3) -> None:
        """Consume requests until half-close or ``idle_s`` without one (bounded)."""
        for _ in range(1000):
            try:
                req = await asyncio.wait_for(it.__anext__(), idle_s)
            except (TimeoutError, StopAsyncIteration, grpc.aio.AioRpcError, asyncio.InvalidStateError):
                return
            if "input" in req:
                rec.texts.append(req.input.text)

    async def _maybe_fail(self, voice: str, context: grpc.aio.ServicerContext,
                          rec: FakeStream | None = None) -> None:
        code = self.fail_voices.get(voice, self.fail_with)
        if code is not None:
            if rec is not None:
                rec.status = f"aborted:{code.name}"
            await context.abort(code, f"fake failure {code.name} for {voice}")

    async def _abort(self, rec: FakeStream, context: grpc.aio.ServicerContext, code: grpc.StatusCode,
                     message: str) -> None:
        rec.status = f"aborted:{code.name}"
        await context.abort(code, message)
