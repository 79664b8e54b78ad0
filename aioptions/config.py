"""The effective AI configuration of one call turn, as plain data (no Django).

``aioptions.selectors.resolve_config`` builds it from the AIConfig row, a campaign's overrides and
which provider keys exist; provider factories and the voice pipeline only ever read this object.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class TurnSettings:
    """Flux end-of-turn settings. ``eager_eot_threshold=None`` means eager end-of-turn is off."""

    eot_threshold: float = 0.7
    eager_eot_threshold: float | None = None
    eot_timeout_ms: int = 5000
    # Pipeline behaviour (not sent to the recogniser): barge-in, call length, no-dead-air timing
    barge_in: bool = True
    barge_in_min_ms: int = 0  # caller speech needed before the agent stops; 0 = at StartOfTurn
    max_call_s: int = 1800
    filler_ms: int = 1000  # from the end of the caller's speech
    apology_ms: int = 3000


@dataclass(frozen=True)
class EffectiveConfig:
    llm_provider: str
    llm_model: str
    tts_provider: str
    voice_id: str
    tts_model: str
    stt_provider: str
    stt_model: str
    turn: TurnSettings = field(default_factory=TurnSettings)
    # What was asked for before a missing key sent a stage to its offline engine, e.g.
    # ("tts: cartesia has no key -> offline",). Empty when everything runs as configured.
    fallbacks: tuple[str, ...] = ()
    version: int = 0  # AIConfig.version it was resolved from

    def as_dict(self) -> dict:
        return asdict(self)
