"""Deepgram Flux wire facts in one place: the listen URL's query, the messages we send and how a
``TurnInfo`` becomes a TurnEvent on the call's clock.

Sources: developers.deepgram.com/reference/speech-to-text/listen-flux (query parameters, message
types), /docs/flux/configuration (Configure: thresholds and keyterms; keyterms replace the list),
and the deepgram-python-sdk 7.17 ``listen/v2`` types (providers.md §1). The fatal error's ``type``
on the wire is ``"Error"``; there is no KeepAlive message in v2.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

from .base import AudioFormat, TurnEvent, Word

THRESHOLDS = ("eot_threshold", "eager_eot_threshold", "eot_timeout_ms")
CLOSE_STREAM = json.dumps({"type": "CloseStream"})


def kind_for_status(status: int) -> str:
    """A handshake's HTTP status as a ProviderError kind."""
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limit"
    return "server" if status >= 500 else "bad_request"


def listen_url(base: str, model: str, fmt: AudioFormat, params: dict) -> str:
    """``/v2/listen?model=..&encoding=..&sample_rate=..`` plus the set thresholds; ``keyterm`` repeats."""
    pairs: list[tuple[str, object]] = [("model", model), ("encoding", fmt.encoding), ("sample_rate", fmt.sample_rate)]
    pairs += [(k, params[k]) for k in THRESHOLDS if params.get(k) is not None]
    pairs += [("keyterm", k) for k in params.get("keyterm") or ()]
    return f"{base}?{urlencode(pairs)}"


def configure_message(thresholds: dict, keyterms: list[str] | None) -> dict | None:
    """The ``Configure`` message, or None when there is nothing to change."""
    message: dict = {"type": "Configure"}
    if thresholds:
        message["thresholds"] = thresholds
    if keyterms is not None:
        message["keyterms"] = list(keyterms)
    return message if len(message) > 1 else None


def turn_event(msg: dict, offset_s: float, turn_base: int) -> TurnEvent:
    """A ``TurnInfo`` as a TurnEvent: times shifted by where the connection's 0 lies on the call
    clock, ``turn_index`` continued from the call's earlier connections."""

    def shift(v) -> float | None:
        return None if v is None else float(v) + offset_s

    words = tuple(
        Word(str(w.get("word", "")), shift(w.get("start")), shift(w.get("end")), w.get("confidence"))
        for w in msg.get("words") or []
    )
    return TurnEvent(
        kind=msg.get("event", "Update"),
        turn_index=int(msg.get("turn_index") or 0) + turn_base,
        transcript=msg.get("transcript") or "",
        words=words,
        audio_window_start=float(msg.get("audio_window_start") or 0) + offset_s,
        audio_window_end=float(msg.get("audio_window_end") or 0) + offset_s,
        end_of_turn_confidence=float(msg.get("end_of_turn_confidence") or 0),
        trigger=msg.get("trigger"),
        received_at=time.monotonic(),
    )
