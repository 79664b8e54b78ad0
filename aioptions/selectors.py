"""Reads: the AIConfig row, the effective per-turn config, and what the page/API show."""

from __future__ import annotations

from . import catalog
from .config import EffectiveConfig, TurnSettings
from .keys import has_key
from .models import AIConfig

# Turn settings the pipeline applies itself (the recogniser's are eot/eager/timeout)
PIPELINE_TURN_FIELDS = ("barge_in", "barge_in_min_ms", "max_call_s", "filler_ms", "apology_ms")


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
            **{k: getattr(cfg, k) for k in PIPELINE_TURN_FIELDS},
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
        turn=TurnSettings(cfg.eot_threshold, cfg.eager_eot_threshold, cfg.eot_timeout_ms,
                          **{k: getattr(cfg, k) for k in PIPELINE_TURN_FIELDS}),
        fallbacks=tuple(fallbacks), version=cfg.version,
    )


def voices_list(include_offline: bool = False) -> list[dict]:
    return [v.as_dict() for v in catalog.voices(include_offline=include_offline)]


def providers_dict(cfg: AIConfig | None = None) -> dict:
    """LLM/TTS/STT providers with models, key presence (never the key), and the selection."""
    from .availability import unavailable_models

    cfg = cfg or get_ai_config()
    missing = unavailable_models()

    def llm_entry(p: catalog.Provider) -> dict:
        return {
            "id": p.id, "label": p.label, "offline": p.offline, "key_configured": has_key("llm", p.id),
            "models": [dict(m.as_dict(), available=(not m.retired and m.id not in missing.get(p.id, ())))
                       for m in catalog.llm_models(p.id)],
        }

    def tts_entry(p: catalog.Provider) -> dict:
        return {
            "id": p.id, "label": p.label, "offline": p.offline, "key_configured": has_key("tts", p.id),
            "models": list(p.models),
            "voices": [v.id for v in catalog.voices(include_offline=True) if v.provider == p.id],
        }

    return {
        "llm": [llm_entry(p) for p in catalog.providers("llm")],
        "tts": [tts_entry(p) for p in catalog.providers("tts")],
        "stt": [{"id": p.id, "label": p.label, "offline": p.offline, "models": list(p.models),
                 "key_configured": has_key("stt", p.id)} for p in catalog.providers("stt")],
        "selected": {
            "llm": {"provider": cfg.llm_provider, "model": cfg.llm_model},
            "tts": {"provider": cfg.tts_provider, "voice_id": cfg.tts_voice_id},
        },
        "effective": resolve_config(cfg=cfg).as_dict(),
    }
