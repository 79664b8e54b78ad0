import pytest

from aioptions import catalog
from aioptions.config import EffectiveConfig
from aioptions.providers import factory
from aioptions.providers.cartesia_tts import CartesiaTTS
from aioptions.providers.flux import FluxSTT
from aioptions.providers.google_tts import GoogleTTS
from aioptions.providers.llm import GroqLLM, OpenAILLM
from aioptions.providers.offline_llm import ScriptedLLM
from aioptions.providers.offline_stt import OfflineSTT
from aioptions.providers.offline_tts import OfflineTTS

CFG = EffectiveConfig(llm_provider="groq", llm_model="openai/gpt-oss-20b", tts_provider="cartesia",
                      voice_id="f786b574-daa5-4673-aa0c-cbe3e8534c02", tts_model="sonic-3", stt_provider="deepgram",
                      stt_model="flux-general-en")


@pytest.fixture
def keys(settings):
    settings.DEEPGRAM_API_KEY, settings.DEEPGRAM_URL = "dg", "ws://127.0.0.1:1/v2/listen"
    settings.GROQ_API_KEY, settings.GROQ_BASE_URL = "gq", "http://127.0.0.1:2"
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "oa", "http://127.0.0.1:3/v1"
    settings.CARTESIA_API_KEY, settings.CARTESIA_WS_URL = "ca", "ws://127.0.0.1:4"
    settings.GOOGLE_TTS_INSECURE_ENDPOINT = "127.0.0.1:5"
    return settings


def test_keys_give_cloud_clients_with_configured_urls(keys):
    stt = factory.build_stt(CFG)
    assert isinstance(stt, FluxSTT) and stt.url == "ws://127.0.0.1:1/v2/listen" and stt.api_key == "dg"
    llm = factory.build_llm(CFG)
    assert isinstance(llm, GroqLLM) and str(llm.client.base_url).startswith("http://127.0.0.1:2")
    assert isinstance(factory.build_llm(CFG, provider="openai", model="gpt-4o-mini"), OpenAILLM)
    assert isinstance(factory.build_tts(CFG), CartesiaTTS)
    assert isinstance(factory.build_tts(CFG, "google", "en-US-Chirp3-HD-Kore"), GoogleTTS)


def test_missing_keys_give_offline_engines(settings):
    for name in ("DEEPGRAM_API_KEY", "GROQ_API_KEY", "OPENAI_API_KEY", "CARTESIA_API_KEY",
                 "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_TTS_INSECURE_ENDPOINT"):
        setattr(settings, name, "")
    assert isinstance(factory.build_stt(CFG), OfflineSTT)
    assert isinstance(factory.build_llm(CFG), ScriptedLLM)
    assert isinstance(factory.build_tts(CFG), OfflineTTS)
    assert factory.fallback_llm_chain(CFG)[-1] == ("offline", "offline-script")


def test_fallback_chains(keys):
    chain = factory.fallback_tts_chain(CFG)
    assert chain[0] == ("cartesia", CFG.voice_id)
    assert chain[1][0] == "google" and catalog.get_voice(chain[1][1]).gender == "female"
    assert chain[-1] == ("offline", catalog.OFFLINE_VOICE_ID)
    llm_chain = factory.fallback_llm_chain(CFG)
    assert llm_chain[:2] == [("groq", "openai/gpt-oss-20b"), ("groq", "openai/gpt-oss-120b")]
    assert ("openai", "gpt-4o-mini") in llm_chain and llm_chain[-1][0] == "offline"
