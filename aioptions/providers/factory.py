"""The one place provider clients are built: from an EffectiveConfig plus settings (keys, URLs).

A provider with no key resolves to its offline engine, so a call always has all three stages.
Fallback chains give the pipeline what to try next when a provider fails mid-call, and the
``build_offline_*`` functions are the one place each stage's offline engine is named: the STT
supervisor, the LLM flow and the agent's spoken fillers all take their last resort from here.
"""

from __future__ import annotations

from django.conf import settings

from aioptions import catalog
from aioptions.config import EffectiveConfig
from aioptions.keys import has_key

from .base import LLM, STT, TTS


def build_stt(cfg: EffectiveConfig) -> STT:
    if cfg.stt_provider == "deepgram" and has_key("stt", "deepgram"):
        from .flux import FluxSTT

        return FluxSTT(api_key=settings.DEEPGRAM_API_KEY, url=settings.DEEPGRAM_URL, model=cfg.stt_model)
    return build_offline_stt()


def build_offline_stt() -> STT:
    """The recogniser of last resort (Whisper tiny.en behind Silero VAD; see offline_stt)."""
    from .offline_stt import OfflineSTT

    return OfflineSTT()


def build_offline_llm() -> LLM:
    from .offline_llm import ScriptedLLM

    return ScriptedLLM()


def build_offline_tts() -> TTS:
    """The voice of last resort: Piper when its model is installed, else espeak-ng."""
    from .offline_piper import build_offline_tts as piper_or_espeak

    return piper_or_espeak(catalog.OFFLINE_VOICE_ID)


def build_llm_for(provider: str, model: str) -> LLM:
    # max_retries=0: on a live call a retry after backoff is worse than falling back at once
    if provider == "groq" and has_key("llm", "groq"):
        from .llm import GroqLLM

        return GroqLLM(api_key=settings.GROQ_API_KEY, model=model, base_url=settings.GROQ_BASE_URL, max_retries=0)
    if provider == "openai" and has_key("llm", "openai"):
        from .llm import OpenAILLM

        return OpenAILLM(api_key=settings.OPENAI_API_KEY, model=model, base_url=settings.OPENAI_BASE_URL,
                         max_retries=0)
    return build_offline_llm()


def build_llm(cfg: EffectiveConfig, model: str | None = None, provider: str | None = None) -> LLM:
    return build_llm_for(provider or cfg.llm_provider, model or cfg.llm_model)


def build_tts_for(provider: str, voice_id: str) -> TTS:
    voice = catalog.get_voice(voice_id)
    if provider == "cartesia" and has_key("tts", "cartesia") and voice is not None:
        from .cartesia_tts import CartesiaTTS

        return CartesiaTTS(api_key=settings.CARTESIA_API_KEY, voice_id=voice_id, model=voice.model,
                           base_url=settings.CARTESIA_BASE_URL, ws_url=settings.CARTESIA_WS_URL)
    if provider == "google" and has_key("tts", "google") and voice is not None:
        from .google_tts import GoogleTTS

        return GoogleTTS(voice_id=voice_id, credentials_path=settings.GOOGLE_APPLICATION_CREDENTIALS,
                         insecure_endpoint=settings.GOOGLE_TTS_INSECURE_ENDPOINT, endpoint=settings.GOOGLE_TTS_ENDPOINT)
    return build_offline_tts()


def build_tts(cfg: EffectiveConfig, provider: str | None = None, voice_id: str | None = None) -> TTS:
    return build_tts_for(provider or cfg.tts_provider, voice_id or cfg.voice_id)


def fallback_tts_chain(cfg: EffectiveConfig) -> list[tuple[str, str]]:
    """Configured voice -> a same-gender voice of the other keyed cloud provider -> offline."""
    chain = [(cfg.tts_provider, cfg.voice_id)]
    current = catalog.get_voice(cfg.voice_id)
    for other in ("cartesia", "google"):
        if other != cfg.tts_provider and has_key("tts", other):
            same = [v for v in catalog.voices() if v.provider == other
                    and (current is None or v.gender == current.gender)]
            if same:
                chain.append((other, same[0].id))
    if cfg.tts_provider != "offline":
        chain.append(("offline", catalog.OFFLINE_VOICE_ID))
    return chain


def fallback_llm_chain(cfg: EffectiveConfig) -> list[tuple[str, str]]:
    """Configured model -> another live model of the same provider -> the other provider -> script."""
    chain = [(cfg.llm_provider, cfg.llm_model)]
    if cfg.llm_provider != "offline":
        same = [m for m in catalog.llm_models(cfg.llm_provider) if not m.retired and m.id != cfg.llm_model]
        if same:
            chain.append((cfg.llm_provider, same[0].id))
        for other in ("groq", "openai"):
            if other != cfg.llm_provider and has_key("llm", other):
                chain.append((other, next(m.id for m in catalog.llm_models(other) if not m.retired)))
        chain.append(("offline", "offline-script"))
    return chain
