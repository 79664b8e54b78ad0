"""The three stage interfaces of the voice pipeline: streaming STT, streaming LLM, streaming TTS.

Every provider (cloud or offline) implements one of these; the pipeline and the benchmarks know
nothing else. All times are ``time.monotonic()`` seconds so they line up with the RTP clock.
No Django import here.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

Encoding = Literal["mulaw", "alaw", "linear16"]


@dataclass(frozen=True)
class AudioFormat:
    encoding: Encoding
    sample_rate: int

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * (2 if self.encoding == "linear16" else 1)


MULAW_8K = AudioFormat("mulaw", 8000)
ALAW_8K = AudioFormat("alaw", 8000)
PCM_16K = AudioFormat("linear16", 16000)


class ProviderError(Exception):
    """A provider failed. ``kind`` lets the pipeline pick a fallback without parsing messages.

    kind: "auth" (401/403), "rate_limit" (429), "server" (5xx), "timeout", "connection",
    "not_found" (unknown model/voice), "bad_request", "closed" (unexpected close), "other".
    """

    def __init__(self, message: str, *, kind: str = "other", status: int | None = None,
                 provider: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.provider = provider


class STTError(ProviderError):
    pass


class LLMError(ProviderError):
    pass


class TTSError(ProviderError):
    pass


# --- STT -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Word:
    word: str
    start: float | None = None
    end: float | None = None
    confidence: float | None = None


TurnEventKind = Literal["StartOfTurn", "Update", "EagerEndOfTurn", "TurnResumed", "EndOfTurn"]


@dataclass(frozen=True)
class TurnEvent:
    """One Flux-shaped turn event. Offline STT emits the same shape."""

    kind: TurnEventKind
    turn_index: int
    transcript: str = ""
    words: tuple[Word, ...] = ()
    audio_window_start: float = 0.0  # seconds on the call's audio clock (audio sent so far)
    audio_window_end: float = 0.0
    end_of_turn_confidence: float = 0.0
    trigger: str | None = None  # EndOfTurn only: "model" | "manual" | "timeout"
    received_at: float = 0.0  # monotonic time the event reached us

    @property
    def speech_end(self) -> float:
        """Audio-clock time the speech ended: the last word's end, else the window end."""
        for w in reversed(self.words):
            if w.end is not None:
                return w.end
        return self.audio_window_end


CLOSED = object()  # end-of-stream marker put on an STT session's event queue


async def queued_events(queue) -> AsyncIterator[TurnEvent]:
    """Yield TurnEvents from a session's queue until CLOSED; an exception on the queue is raised."""
    while True:
        item = await queue.get()
        if item is CLOSED:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


class STTSession(abc.ABC):
    """One streaming recognition session for one call."""

    @abc.abstractmethod
    async def send(self, audio: bytes) -> None:
        """Queue audio in the session's encoding; never blocks on the network."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[TurnEvent]:
        """Turn events as they arrive; ends after close(). Raises STTError on a fatal error."""

    @abc.abstractmethod
    async def configure(self, *, eot_threshold: float | None = None,
                        eager_eot_threshold: float | None = None,
                        eot_timeout_ms: int | None = None,
                        keyterms: list[str] | None = None) -> None:
        """Change turn settings mid-session (Flux ``Configure``); None leaves a value as it is."""

    def take_faults(self) -> list[str]:
        """Faults the session recovered from since the last call (for the Turn row), then forget them."""
        return []

    def unsent_audio(self) -> bytes:
        """After a fatal error: audio of the turn in progress a fallback recogniser should hear."""
        return b""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish the stream (Flux ``CloseStream``) and release resources. Idempotent."""

    # Audio-clock seconds sent so far (what Flux's audio_window_* are measured against).
    audio_seconds: float = 0.0


class STT(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    async def open(self, fmt: AudioFormat, *, eot_threshold: float = 0.7,
                   eager_eot_threshold: float | None = None,
                   eot_timeout_ms: int = 5000) -> STTSession:
        ...


# --- LLM -----------------------------------------------------------------------------------------
@dataclass
class LLMUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class ToolCallRequest:
    """One function call the model asked for, assembled from streamed fragments (OpenAI/Groq send
    the id and name once, then the JSON arguments split across chunks, keyed by ``index``)."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""  # raw JSON text as the model wrote it (may be invalid: the runner checks)


@dataclass
class LLMResult:
    """Filled in while a stream runs; read it after (or during) iteration."""

    text: str = ""
    requested_at: float = 0.0
    first_token_at: float | None = None
    finished_at: float | None = None
    usage: LLMUsage = field(default_factory=LLMUsage)
    finish_reason: str | None = None
    hangup: bool = False  # the model asked to end the call (tool call or marker)
    tool_calls: list[ToolCallRequest] = field(default_factory=list)  # finish_reason "tool_calls"

    @property
    def ttft_ms(self) -> float | None:
        if self.first_token_at is None:
            return None
        return (self.first_token_at - self.requested_at) * 1000.0


class LLMStream(abc.ABC):
    """An in-flight completion. ``async for delta in stream`` yields text pieces."""

    result: LLMResult

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[str]:
        ...

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Stop generating (closes the HTTP stream). Idempotent."""


class LLM(abc.ABC):
    name: str = ""
    model: str = ""

    @abc.abstractmethod
    def stream(self, messages: list[dict], *, temperature: float = 0.6,
               max_tokens: int = 300) -> LLMStream:
        """Start a streaming chat completion. Errors surface as LLMError while iterating."""

    async def list_models(self) -> list[str]:
        """Model ids the provider serves right now (``GET /models``)."""
        return [self.model]

    async def aclose(self) -> None:
        return None


# --- TTS -----------------------------------------------------------------------------------------
class TTSUtterance(abc.ABC):
    """One utterance (a Cartesia context / a Google stream): text pieces in, audio chunks out."""

    requested_at: float | None = None  # first push() time
    first_audio_at: float | None = None
    # Providers that can tell where each pushed piece's audio ends set marks_pieces and append to
    # piece_ends (bytes of audio yielded when piece i was complete). Failover uses it to resume at
    # the first unplayed piece; without it the pipeline estimates from the speaking rate.
    marks_pieces: bool = False
    piece_ends: list[int] = []  # noqa: RUF012 - replaced per instance by providers that mark pieces

    @abc.abstractmethod
    async def push(self, text: str) -> None:
        """Add a speakable piece; include its trailing space/punctuation."""

    @abc.abstractmethod
    async def finish(self) -> None:
        """No more text will come; audio ends after what was pushed."""

    @abc.abstractmethod
    def audio(self) -> AsyncIterator[bytes]:
        """Audio chunks in the requested format as they arrive; ends when done or cancelled."""

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Barge-in: nothing more is yielded after this returns. Idempotent."""

    @property
    def ttfb_ms(self) -> float | None:
        if self.requested_at is None or self.first_audio_at is None:
            return None
        return (self.first_audio_at - self.requested_at) * 1000.0


class TTS(abc.ABC):
    name: str = ""
    voice_id: str = ""
    model: str = ""

    @abc.abstractmethod
    async def utterance(self, fmt: AudioFormat) -> TTSUtterance:
        ...

    async def synthesize(self, text: str, fmt: AudioFormat) -> bytes:
        """Whole-text synthesis (voice previews): one utterance, all audio joined."""
        utt = await self.utterance(fmt)
        await utt.push(text)
        await utt.finish()
        return b"".join([chunk async for chunk in utt.audio()])

    async def aclose(self) -> None:
        """Close the per-call connection, if any."""
        return None
