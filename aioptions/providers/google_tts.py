"""Google Cloud Text-to-Speech Chirp 3 HD through ``google-cloud-texttospeech`` (providers.md §4).

One ``StreamingSynthesize`` gRPC call per utterance: the first request carries only the streaming config,
later ones only text. Google prefers whole sentences, so pushed pieces are buffered to a sentence end
(or sent as they are after ``max_hold_s``, which also keeps the stream inside Google's 5 s input-idle
limit). The stream is opened at the first push and its request iterator closed by finish(), so it
never idles before or after the text. The async client is built lazily inside the running event loop
(a ``grpc.aio`` channel belongs to the loop that made it). No Django import here.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.exceptions import GoogleAuthError
from google.cloud import texttospeech_v1 as tts
from google.cloud.texttospeech_v1.services.text_to_speech.transports import TextToSpeechGrpcAsyncIOTransport

from .base import TTS, AudioFormat, TTSError, TTSUtterance

log = logging.getLogger(__name__)

PROVIDER = "google"
_VOICE_RE = re.compile(r"^([a-z]{2,3})-([A-Z]{2}|[0-9]{3})-.+$")
_STREAM_ENCODING = {"mulaw": tts.AudioEncoding.MULAW, "alaw": tts.AudioEncoding.ALAW,
                    "linear16": tts.AudioEncoding.PCM}  # streaming has no LINEAR16; PCM is headerless
_BATCH_ENCODING = {"mulaw": tts.AudioEncoding.MULAW, "alaw": tts.AudioEncoding.ALAW,
                   "linear16": tts.AudioEncoding.LINEAR16}
# a sentence end: . ! ? ; : or an ellipsis, optionally closed by quotes/brackets, then space or end
_SENTENCE_END = re.compile(r"""(?:[.!?;:\u2026]+["')\]]*)(?=\s|$)|\n""")
_MAX_PIECE = 400  # characters held before cutting at a space even without a sentence end
_END = object()
# per event loop: (insecure_endpoint, endpoint, credentials_path) -> client (see GoogleTTS.client)
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, str], Any]] = (
    weakref.WeakKeyDictionary())

_ERROR_KINDS: tuple[tuple[type[Exception], str], ...] = (
    (gexc.Unauthenticated, "auth"), (gexc.PermissionDenied, "auth"), (gexc.ResourceExhausted, "rate_limit"),
    (gexc.InvalidArgument, "bad_request"), (gexc.FailedPrecondition, "bad_request"),
    (gexc.OutOfRange, "bad_request"), (gexc.NotFound, "not_found"), (gexc.DeadlineExceeded, "timeout"),
    (gexc.ServiceUnavailable, "server"), (gexc.Aborted, "server"), (gexc.InternalServerError, "server"),
    (gexc.Unknown, "server"), (gexc.Cancelled, "closed"),
)


def map_error(exc: BaseException) -> TTSError:
    """A google.api_core (or raw grpc.aio) error as a TTSError whose kind the pipeline can act on."""
    if isinstance(exc, grpc.aio.AioRpcError):
        exc = gexc.from_grpc_error(exc)
    if isinstance(exc, gexc.GoogleAPICallError):
        kind = next((k for cls, k in _ERROR_KINDS if isinstance(exc, cls)), "other")
        status = exc.code if isinstance(exc.code, int) else None
        return TTSError(f"Google TTS {type(exc).__name__}: {exc.message}", kind=kind, status=status,
                        provider=PROVIDER)
    return TTSError(f"Google TTS failed: {type(exc).__name__}: {exc}", kind="other", provider=PROVIDER)


def strip_riff(data: bytes) -> bytes:
    """Drop a WAV header (SynthesizeSpeech adds one for LINEAR16/MULAW/ALAW) and keep the samples."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if chunk_id == b"data":
            return data[pos + 8:]
        pos += 8 + size + (size & 1)
    return b""


def language_of(voice_id: str) -> str:
    """``en-US-Chirp3-HD-Kore`` -> ``en-US`` (the voice name carries its locale)."""
    m = _VOICE_RE.match(voice_id)
    if not m:
        raise ValueError(f"Google voice id {voice_id!r} is not '<lang>-<REGION>-<name>' (e.g. en-US-Chirp3-HD-Kore)")
    return f"{m.group(1)}-{m.group(2)}"


class GoogleTTS(TTS):
    """A Chirp 3 HD voice. One object per call (or per preview); ``aclose()`` closes its channel."""

    name = "google"
    model = "chirp3-hd"

    def __init__(self, *, voice_id: str, credentials_path: str = "", insecure_endpoint: str = "",
                 endpoint: str = "texttospeech.googleapis.com", speaking_rate: float = 1.0,
                 max_hold_s: float = 1.0, stream_timeout_s: float = 120.0, synth_timeout_s: float = 30.0) -> None:
        self.language_code = language_of(voice_id)
        if not 0.25 <= speaking_rate <= 2.0:
            raise ValueError("speaking_rate must be within 0.25..2.0")
        self.voice_id = voice_id
        self.credentials_path = credentials_path
        self.insecure_endpoint = insecure_endpoint
        self.endpoint = endpoint
        self.speaking_rate = speaking_rate
        self.max_hold_s = max_hold_s
        self.stream_timeout_s = stream_timeout_s
        self.synth_timeout_s = synth_timeout_s
        self._client: tts.TextToSpeechAsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"GoogleTTS(voice_id={self.voice_id!r}, endpoint={self.insecure_endpoint or self.endpoint!r})"

    def client(self) -> tts.TextToSpeechAsyncClient:
        """The async client for the running loop, built on first use (never at import time) and shared
        by every GoogleTTS of the loop with the same endpoint and credentials: a gRPC channel multiplexes
        streams, and building one per call (credentials file, TLS) stalled the loop at call set-up."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is loop:
            return self._client
        key = (self.insecure_endpoint, self.endpoint, self.credentials_path)
        shared = _SHARED.setdefault(loop, {})
        if key in shared:
            self._client, self._client_loop = shared[key], loop
            return self._client
        client = self._build_client()
        shared[key] = client
        self._client, self._client_loop = client, loop
        return client

    def _build_client(self) -> tts.TextToSpeechAsyncClient:
        if self.insecure_endpoint:
            # A plaintext channel (fakes, local proxies): no TLS and no credentials lookup at all.
            channel = grpc.aio.insecure_channel(self.insecure_endpoint)
            client = tts.TextToSpeechAsyncClient(transport=TextToSpeechGrpcAsyncIOTransport(channel=channel))
        else:
            try:
                creds = None
                if self.credentials_path:
                    from google.oauth2 import service_account

                    creds = service_account.Credentials.from_service_account_file(
                        self.credentials_path, scopes=["https://www.googleapis.com/auth/cloud-platform"])
                client = tts.TextToSpeechAsyncClient(credentials=creds,
                                                     client_options=ClientOptions(api_endpoint=self.endpoint))
            except (GoogleAuthError, OSError, ValueError) as exc:
                raise TTSError(f"Google credentials unusable ({type(exc).__name__}); set "
                               "GOOGLE_APPLICATION_CREDENTIALS to a service-account JSON file",
                               kind="auth", provider=PROVIDER) from None
        return client

    def voice(self) -> tts.VoiceSelectionParams:
        return tts.VoiceSelectionParams(language_code=self.language_code, name=self.voice_id)

    async def utterance(self, fmt: AudioFormat) -> GoogleUtterance:
        if fmt.encoding not in _STREAM_ENCODING:
            raise ValueError(f"Google streaming cannot produce encoding {fmt.encoding!r}")
        cfg = tts.StreamingSynthesizeConfig(
            voice=self.voice(),
            streaming_audio_config=tts.StreamingAudioConfig(
                audio_encoding=_STREAM_ENCODING[fmt.encoding], sample_rate_hertz=fmt.sample_rate,
                speaking_rate=self.speaking_rate))
        return GoogleUtterance(self, cfg, fmt)

    async def synthesize(self, text: str, fmt: AudioFormat) -> bytes:
        """One unary SynthesizeSpeech (previews): headerless audio in ``fmt``, bounded by synth_timeout_s."""
        text = text.strip()
        if not text:
            raise ValueError("nothing to synthesize: empty text")
        if len(text) > 2000:
            raise ValueError("preview text is limited to 2000 characters")
        if fmt.encoding not in _BATCH_ENCODING:
            raise ValueError(f"Google cannot produce encoding {fmt.encoding!r}")
        try:
            resp = await self.client().synthesize_speech(
                input=tts.SynthesisInput(text=text), voice=self.voice(),
                audio_config=tts.AudioConfig(audio_encoding=_BATCH_ENCODING[fmt.encoding],
                                             sample_rate_hertz=fmt.sample_rate, speaking_rate=self.speaking_rate),
                timeout=self.synth_timeout_s)
        except (gexc.GoogleAPICallError, grpc.aio.AioRpcError) as exc:
            raise map_error(exc) from None
        return strip_riff(resp.audio_content)

    async def aclose(self) -> None:
        """Forget the client; the loop's shared channel stays open for other calls
        (``aclose_shared_clients()`` closes it at shutdown)."""
        self._client = None
        self._client_loop = None


async def aclose_shared_clients() -> None:
    """Close the running loop's shared Google channels (process shutdown)."""
    for client in _SHARED.pop(asyncio.get_running_loop(), {}).values():
        try:
            await client.transport.close()
        except Exception:  # noqa: BLE001 - shutting down
            pass


class GoogleUtterance(TTSUtterance):
    """One StreamingSynthesize call, opened at the first push()."""

    def __init__(self, owner: GoogleTTS, cfg: tts.StreamingSynthesizeConfig, fmt: AudioFormat) -> None:
        self.fmt = fmt
        self.requested_at = None
        self.first_audio_at = None
        self.sent_texts: list[str] = []  # what went to Google, sentence by sentence
        self._owner = owner
        self._cfg = cfg
        self._buf = ""
        self._buf_since = 0.0
        self._requests: asyncio.Queue[str | None] = asyncio.Queue()
        self._out: asyncio.Queue[Any] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._call: Any = None
        self._finished = False
        self._cancelled = False
        self._ended = False  # the response stream ended (done or error)

    async def push(self, text: str) -> None:
        if self._cancelled or self._ended:
            return
        if self._finished:
            raise RuntimeError("push() after finish() on the same utterance")
        if not text:
            return
        if self.requested_at is None:
            self.requested_at = time.monotonic()
            self._reader = asyncio.create_task(self._read(self._owner.client()))
        if not self._buf:
            self._buf_since = time.monotonic()
        self._buf += text
        self._release(force=False)

    async def finish(self) -> None:
        if self._finished or self._cancelled:
            return
        self._finished = True
        if self._reader is None:  # nothing was said: no stream to open
            self._out.put_nowait(_END)
            return
        self._release(force=True)
        self._requests.put_nowait(None)  # ends the request iterator: gRPC half-closes the stream

    async def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True
        self._out.put_nowait(_END)
        self._requests.put_nowait(None)
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            await asyncio.wait({self._reader}, timeout=1.0)

    async def audio(self) -> AsyncIterator[bytes]:
        while not self._cancelled:
            item = await self._out.get()
            if self._cancelled or item is _END:
                return
            if isinstance(item, TTSError):
                raise item
            yield item

    # --- internals ---------------------------------------------------------------------------------
    def _release(self, *, force: bool) -> None:
        """Queue whole sentences from the buffer (everything when ``force``)."""
        cut = 0
        for m in _SENTENCE_END.finditer(self._buf):
            cut = m.end()
        if not cut and len(self._buf) > _MAX_PIECE:
            cut = self._buf.rfind(" ", 0, _MAX_PIECE) + 1 or _MAX_PIECE
        if force:
            cut = len(self._buf)
        if cut:
            piece, self._buf = self._buf[:cut], self._buf[cut:]
            self._buf_since = time.monotonic()
            if piece.strip():
                self._requests.put_nowait(piece.strip())

    async def _request_iter(self) -> AsyncIterator[tts.StreamingSynthesizeRequest]:
        yield tts.StreamingSynthesizeRequest(streaming_config=self._cfg)
        hold = self._owner.max_hold_s
        while not (self._ended or self._cancelled):
            wait = hold if not self._buf else max(0.01, self._buf_since + hold - time.monotonic())
            try:
                text = await asyncio.wait_for(self._requests.get(), timeout=wait)
            except TimeoutError:
                if self._buf and time.monotonic() - self._buf_since >= hold:
                    self._release(force=True)  # a clause waited long enough: say it now
                continue
            if text is None:
                return
            self.sent_texts.append(text)
            yield tts.StreamingSynthesizeRequest(input=tts.StreamingSynthesisInput(text=text))

    async def _read(self, client: tts.TextToSpeechAsyncClient) -> None:
        try:
            call = await client.streaming_synthesize(requests=self._request_iter(),
                                                     timeout=self._owner.stream_timeout_s)
            self._call = call
            if self._cancelled:
                call.cancel()
                return
            async for resp in call:
                data = strip_riff(resp.audio_content)
                if data:
                    if self.first_audio_at is None:  # on arrival, whenever the consumer iterates
                        self.first_audio_at = time.monotonic()
                    self._out.put_nowait(data)
            self._out.put_nowait(_END)
        except asyncio.CancelledError:
            self._out.put_nowait(_END)
            raise
        except (gexc.GoogleAPICallError, grpc.aio.AioRpcError) as exc:
            self._out.put_nowait(_END if self._cancelled else map_error(exc))
        except Exception as exc:  # noqa: BLE001 - surface anything else to audio(), never lose it in a task
            log.warning("Google TTS stream failed: %s", type(exc).__name__)
            self._out.put_nowait(map_error(exc))
        finally:
            self._ended = True
            self._requests.put_nowait(None)  # a stream the server ended must not keep its request iterator
