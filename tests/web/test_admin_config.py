"""Admin writes to the AI config go through services.update_config, like the API and the page:
refused values show on the form and save nothing; a good save is one atomic, recorded, broadcast
change (one version, history rows, one config_updated)."""

from unittest import mock

import pytest

from aioptions import services
from aioptions.models import AIConfigChange
from aioptions.selectors import get_ai_config

pytestmark = pytest.mark.django_db(transaction=True)  # on_commit broadcasts really run
URL = "/admin/aioptions/aiconfig/1/change/"


@pytest.fixture
def admin_client(root):
    get_ai_config()
    return root


def form(**over) -> dict:
    data = {"llm": "openai:gpt-4o-mini", "voice": "google:en-US-Chirp3-HD-Leda", "eot_threshold": "0.8",
            "eager_eot_threshold": "0.5", "eot_timeout_ms": "3000"}
    data.update(over)
    return data


def test_admin_save_is_one_atomic_recorded_broadcast_change(admin_client):
    with mock.patch("aioptions.services.broadcast_config") as broadcast, \
            mock.patch("aioptions.services.update_config", wraps=services.update_config) as update:
        r = admin_client.post(URL, form())
    assert r.status_code == 302, r.content.decode()[:1500]
    update.assert_called_once()
    assert update.call_args.kwargs["source"] == "admin"
    cfg = get_ai_config()
    assert (cfg.version, cfg.llm_model, cfg.tts_voice_id, cfg.eager_eot_threshold) == (1, "gpt-4o-mini",
                                                                                       "en-US-Chirp3-HD-Leda", 0.5)
    assert AIConfigChange.objects.filter(source="admin").count() == 7
    broadcast.assert_called_once()
    assert broadcast.call_args.args[0]["config"]["version"] == 1


def test_admin_refuses_what_the_api_refuses_and_saves_nothing(admin_client):
    # eager above eot: the model field validators accept each value, only the service sees the clash
    r = admin_client.post(URL, form(eot_threshold="0.6", eager_eot_threshold="0.8"))
    assert r.status_code == 200 and "must not exceed eot_threshold" in r.content.decode()
    cfg = get_ai_config()
    assert cfg.version == 0 and cfg.llm_provider == "groq" and AIConfigChange.objects.count() == 0
