"""Deepgram Flux streaming STT over the ``websockets`` library (wss://api.deepgram.com/v2/listen).

Why it is built this way:
- ``send()`` only appends to a buffer and returns; a sender task ships ~80 ms binary frames
  (Deepgram's recommendation) so neither the RTP path nor the event receiver ever waits on the network.
  At the end of speech (a silent 20 ms G.711 frame within ``flush_tail_s`` of the last loud one) what
  is pending ships at once, so framing adds nothing to the end of a turn (issue 18).
- One call = one audio clock: the position of a byte is its offset in everything passed to ``send()``.
  Flux's ``audio_window_*`` and word times count from 0 on each connection, so every connection
  remembers where its first byte sits on the call clock and events are shifted by that.
- On an unexpected close the session reconnects (bounded, with backoff). Audio not yet shipped is
  kept, and the audio of the turn in progress (since the last ``EndOfTurn``, at most ``replay_s``) is
  sent again first, so speech cut by the drop is still recognised and no finished turn is repeated.
  ``turn_index`` continues across connections.
- A Flux ``Error`` message is fatal for that connection only (the server closes it next): it is
  handled like a drop (reconnect and replay), at most ``max_errors`` times per session. When the
  session gives up it raises STTError from ``events()`` and keeps the audio of the turn in progress
  (``unsent_audio()``), so the pipeline's fallback recogniser hears what the caller was saying.
- ``configure()`` sends Flux's documented ``Configure`` (thresholds, keyterms) at once; the reply
  (``ConfigureSuccess``/``ConfigureFailure``) is logged, and the values go into any reconnect's URL.
"""

from __future__ import annotations

from .base import STT, AudioFormat, STTError
from .flux_session import FluxSession

__all__ = ["FluxSTT", "FluxSession"]


class FluxSTT(STT):
    """Factory for Flux sessions; one instance may open many sessions (one per call)."""

    name = "deepgram"

    def __init__(
        self,
        *,
        api_key: str,
        url: str = "wss://api.deepgram.com/v2/listen",
        model: str = "flux-general-en",
        max_reconnects: int = 5,
        max_errors: int = 3,
        connect_timeout: float = 10.0,
        replay_s: float = 2.0,
        max_backlog_s: float = 30.0,
        flush_tail_s: float = 2.0,
    ) -> None:
        if not api_key:
            raise STTError("DEEPGRAM_API_KEY is not set", kind="auth", provider="deepgram")
        self.api_key = api_key
        self.url = url
        self.model = model
        self.max_reconnects = max_reconnects
        self.max_errors = max_errors
        self.connect_timeout = connect_timeout
        self.replay_s = replay_s
        self.max_backlog_s = max_backlog_s
        self.flush_tail_s = flush_tail_s

    def __repr__(self) -> str:  # never the key
        return f"FluxSTT(url={self.url!r}, model={self.model!r})"

    async def open(
        self,
        fmt: AudioFormat,
        *,
        eot_threshold: float = 0.7,
        eager_eot_threshold: float | None = None,
        eot_timeout_ms: int = 5000,
        keyterms: list[str] | None = None,
    ) -> FluxSession:
        """Connect (raises STTError at once on 401/unreachable) and return a running session."""
        params = {
            "eot_threshold": eot_threshold,
            "eager_eot_threshold": eager_eot_threshold,
            "eot_timeout_ms": eot_timeout_ms,
            "keyterm": list(keyterms) if keyterms else None,
        }
        session = FluxSession(self, fmt, params)
        await session.start()
        return session
