"""Reads: the AIConfig row, the effective per-turn config, and what the page/API show."""

from __future__ import annotations

from . import catalog
from .config import EffectiveConfig, TurnSettings
from .keys import has_key
from .models import AIConfig


def get_ai_config() -> AIConfig:
    """The singleton row, created with catalog defaults on first read."""
    obj, _ = AIConfig.objects.get_or_create(pk=1)
    return obj


def config_dict(cfg: AIConfig | None = None) -> dict:
    """The JSON shape of the global config used by the API, the WebSocket and the page."""
    cfg = cfg or get_ai_config()
    voice = catalog.get_voice(cfg.tts_voice_id)
    return {
        "version": cfg.version,
        "llm": {"provider": cfg.llm_provider, "model": cfg.llm_model},
        "tts": {
            "provider": cfg.tts_provider,
            "voice_id": cfg.tts_voice_id,
            "voice_name": voice.name if voice else cfg.tts_voice_id,
        },
        "turn": {
            "eot_threshold": cfg.eot_threshold,
            "eager_eot_threshold": cfg.eager_eot_threshold,
            "eot_timeout_ms": cfg.eot_timeout_ms,
        },
        "updated_at": cfg.updated_at.isoformat() if cfg.updated_at else None,
        "effective": resolve_config(cfg=cfg).as_dict(),
    }


def resolve_config(*, cfg: AIConfig | None = None, voice: tuple[str, str] | None = None,
                   llm: tuple[str, str] | None = None) -> EffectiveConfig:
    """The config one call turn runs with.

    ``voice``/``llm`` are a campaign's overrides (provider, id) or None for the global choice.
    Any stage whose provider has no key resolves to that stage's offline engine, and the reason
    is listed in ``fallbacks`` so the page and the Turn record can say so.
    """
    cfg = cfg or get_ai_config()
    fallbacks: list[str] = []

    llm_provider, llm_model = llm or (cfg.llm_provider, cfg.llm_model)
    if not has_key("llm", llm_provider):
        fallbacks.append(f"llm: {llm_provider} has no key -> offline script")
        llm_provider, llm_model = "offline", "offline-script"

    tts_provider, voice_id = voice or (cfg.tts_provider, cfg.tts_voice_id)
    if not has_key("tts", tts_provider):
        fallbacks.append(f"tts: {tts_provider} has no key -> offline voice")
        tts_provider, voice_id = "offline", catalog.OFFLINE_VOICE_ID
    v = catalog.get_voice(voice_id)
    tts_model = v.model if v else ""

    if has_key("stt", "deepgram"):
        stt_provider, stt_model = "deepgram", catalog.FLUX_MODEL
    else:
        fallbacks.append("stt: deepgram has no key -> offline recogniser")
        stt_provider, stt_model = "offline", catalog.OFFLINE_STT_MODEL

    return EffectiveConfig(
        llm_provider=llm_provider, llm_model=llm_model,
        tts_provider=tts_provider, voice_id=voice_id, tts_model=tts_model,
        stt_provider=stt_provider, stt_model=stt_model,
        turn=TurnSettings(cfg.eot_threshold, cfg.eager_eot_threshold, cfg.eot_timeout_ms),
        fallbacks=tuple(fallbacks), version=cfg.version,
    )
