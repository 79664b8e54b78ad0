import pytest

from aioptions import catalog, services
from aioptions.models import AIConfig, AIConfigChange
from aioptions.selectors import get_ai_config, resolve_config
from campaigns import services as campaign_services
from campaigns.models import Campaign
from campaigns.selectors import campaign_for_extension, effective_config_for

pytestmark = pytest.mark.django_db


def test_catalog_has_the_18_voices_and_current_groq_models():
    assert len(catalog.voices()) == 18
    assert sum(v.provider == "cartesia" for v in catalog.voices()) == 10
    google = {v.name: v.gender for v in catalog.voices() if v.provider == "google"}
    assert google == {"Orus": "male", "Charon": "male", "Fenrir": "male", "Puck": "male",
                      "Kore": "female", "Aoede": "female", "Leda": "female", "Zephyr": "female"}
    assert all(v.id == f"en-US-Chirp3-HD-{v.name}" for v in catalog.voices() if v.provider == "google")
    assert all(v.model == "sonic-3" for v in catalog.voices() if v.provider == "cartesia")
    llama = catalog.get_llm_model("groq", "llama-3.3-70b-versatile")
    assert llama is not None and llama.retired
    assert catalog.DEFAULT_LLM == ("groq", "openai/gpt-oss-20b")


def test_update_voice_saves_records_history_and_bumps_version(staff):
    before = get_ai_config().version
    services.update_tts_voice(provider="google", voice_id="en-US-Chirp3-HD-Leda", user=staff, source="test")
    cfg = AIConfig.objects.get(pk=1)
    assert (cfg.tts_provider, cfg.tts_voice_id) == ("google", "en-US-Chirp3-HD-Leda")
    assert cfg.version == before + 1 and cfg.updated_by == staff
    changes = list(AIConfigChange.objects.filter(target="ai_config"))
    assert {c.field for c in changes} == {"tts_provider", "tts_voice_id"}
    assert all(c.user == staff and c.source == "test" for c in changes)


def test_same_value_changes_nothing():
    cfg = get_ai_config()
    services.update_llm(provider=cfg.llm_provider, model=cfg.llm_model)
    assert AIConfigChange.objects.count() == 0
    assert get_ai_config().version == cfg.version


@pytest.mark.parametrize("provider,voice,fragment", [
    ("google", "nope", "unknown voice"),
    ("cartesia", "en-US-Chirp3-HD-Leda", "belongs to provider 'google'"),
    ("azure", "en-US-Chirp3-HD-Leda", "unknown TTS provider"),
    ("", "x", "provider is required"),
    (None, "x", "provider is required"),
    ("google", 5, "voice_id is required"),
])
def test_bad_voice_is_rejected_and_nothing_saved(provider, voice, fragment):
    before = (get_ai_config().tts_voice_id, get_ai_config().version)
    with pytest.raises(services.ValidationError, match=fragment):
        services.update_tts_voice(provider=provider, voice_id=voice)
    cfg = get_ai_config()
    assert (cfg.tts_voice_id, cfg.version) == before
    assert AIConfigChange.objects.count() == 0


@pytest.mark.parametrize("provider,model,fragment", [
    ("groq", "gpt-4o-mini", "unknown model"),
    ("groq", "llama-3.3-70b-versatile", "retired"),
    ("anthropic", "x", "unknown LLM provider"),
])
def test_bad_llm_is_rejected(provider, model, fragment):
    with pytest.raises(services.ValidationError, match=fragment):
        services.update_llm(provider=provider, model=model)
    assert get_ai_config().llm_model == catalog.DEFAULT_LLM[1]


def test_turn_settings_ranges_and_eager_not_above_eot():
    services.update_turn(eot_threshold=0.8, eager_eot_threshold=0.5, eot_timeout_ms=3000)
    cfg = get_ai_config()
    assert (cfg.eot_threshold, cfg.eager_eot_threshold, cfg.eot_timeout_ms) == (0.8, 0.5, 3000)
    services.update_turn(eager_eot_threshold="off")
    assert get_ai_config().eager_eot_threshold is None
    for bad in ({"eot_threshold": 1.2}, {"eot_threshold": 0.4}, {"eager_eot_threshold": 0.95},
                {"eot_timeout_ms": 100}, {"eot_timeout_ms": 1500.5}, {"eot_threshold": "abc"},
                {"eot_threshold": True}, {"eot_threshold": 0.6, "eager_eot_threshold": 0.7}, {}):
        with pytest.raises(services.ValidationError):
            services.update_turn(**bad)
    cfg = get_ai_config()
    assert (cfg.eot_threshold, cfg.eager_eot_threshold, cfg.eot_timeout_ms) == (0.8, None, 3000)


def test_campaign_voice_set_clear_and_errors(campaign, staff):
    campaign_services.set_campaign_voice(campaign_id=campaign.pk, provider="google",
                                         voice_id="en-US-Chirp3-HD-Leda", user=staff)
    campaign.refresh_from_db()
    assert (campaign.voice_provider, campaign.voice_id) == ("google", "en-US-Chirp3-HD-Leda")
    change = AIConfigChange.objects.get(target=f"campaign:{campaign.pk}")
    assert change.new_value == {"provider": "google", "voice_id": "en-US-Chirp3-HD-Leda"}
    with pytest.raises(campaign_services.CampaignNotFound):
        campaign_services.set_campaign_voice(campaign_id=999, provider="google", voice_id="en-US-Chirp3-HD-Kore")
    with pytest.raises(services.ValidationError):
        campaign_services.set_campaign_voice(campaign_id=campaign.pk, provider="cartesia",
                                             voice_id="en-US-Chirp3-HD-Kore")
    campaign.refresh_from_db()
    assert campaign.voice_id == "en-US-Chirp3-HD-Leda"
    campaign_services.set_campaign_voice(campaign_id=campaign.pk, provider="", voice_id="")
    campaign.refresh_from_db()
    assert (campaign.voice_provider, campaign.voice_id) == ("", "")


def test_effective_config_campaign_override_and_offline_fallback(settings, campaign):
    settings.CARTESIA_API_KEY = ""
    settings.GOOGLE_APPLICATION_CREDENTIALS = ""
    settings.GOOGLE_TTS_INSECURE_ENDPOINT = ""
    settings.GROQ_API_KEY = ""
    settings.DEEPGRAM_API_KEY = ""
    cfg = resolve_config()
    assert (cfg.llm_provider, cfg.tts_provider, cfg.stt_provider) == ("offline", "offline", "offline")
    assert len(cfg.fallbacks) == 3
    settings.GOOGLE_APPLICATION_CREDENTIALS = "/tmp/sa.json"
    settings.GROQ_API_KEY = "k"
    settings.DEEPGRAM_API_KEY = "k"
    campaign.voice_provider, campaign.voice_id = "google", "en-US-Chirp3-HD-Kore"
    campaign.save()
    eff = effective_config_for(campaign)
    assert (eff.tts_provider, eff.voice_id, eff.tts_model) == ("google", "en-US-Chirp3-HD-Kore", "chirp3-hd")
    assert (eff.llm_provider, eff.llm_model) == catalog.DEFAULT_LLM
    assert eff.stt_provider == "deepgram" and eff.fallbacks == ()
    # The global voice is Cartesia, which has no key: a campaign without a voice goes offline.
    other = Campaign.objects.create(name="B", extension="200")
    assert effective_config_for(other).tts_provider == "offline"


def test_campaign_routing_by_extension_and_default(campaign):
    other = Campaign.objects.create(name="B", extension="200")
    assert campaign_for_extension("200") == other
    assert campaign_for_extension("999") == campaign  # default
    other.active = False
    other.save()
    assert campaign_for_extension("200") == campaign
    campaign.active = False
    campaign.save()
    assert campaign_for_extension("999") is None


def test_only_one_default_campaign(campaign):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Campaign.objects.create(name="C", extension="300", is_default=True)
