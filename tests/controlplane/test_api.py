import json

import pytest

from aioptions.models import AIConfigChange
from aioptions.selectors import get_ai_config
from campaigns.models import Campaign

pytestmark = pytest.mark.django_db

LEDA = {"voice_id": "en-US-Chirp3-HD-Leda", "provider": "google"}


def post(client, url, body, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json", **extra)


@pytest.fixture
def loopback_reads(settings):
    settings.API_LOOPBACK_READS = True


def test_voices_open_on_loopback_lists_18(client, loopback_reads):
    r = client.get("/api/v1/ai-options/voices", REMOTE_ADDR="127.0.0.1")
    assert r.status_code == 200
    data = r.json()
    assert len(data) == 18
    assert set(data[0]) >= {"id", "provider", "name", "gender", "description", "use_case"}


def test_loopback_reads_are_off_unless_enabled(staff_client):
    from django.test import Client

    for url in ("/api/v1/ai-options/voices", "/api/v1/ai-options/config", "/api/v1/campaigns",
                "/api/v1/sip/status"):
        r = Client().get(url, REMOTE_ADDR="127.0.0.1")
        assert r.status_code == 401 and r.json()["error"].startswith("authentication required"), url
        assert staff_client.get(url).status_code == 200


def test_loopback_reads_through_a_proxy_are_not_local(client, settings):
    settings.API_LOOPBACK_READS = True
    assert client.get("/api/v1/ai-options/config", REMOTE_ADDR="::1").status_code == 200
    for header in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"):
        r = client.get("/api/v1/ai-options/config", REMOTE_ADDR="127.0.0.1", **{header: "203.0.113.9"})
        assert r.status_code == 401, header


def test_reads_from_elsewhere_need_staff(staff_client, loopback_reads):
    from django.test import Client

    r = Client().get("/api/v1/ai-options/voices", REMOTE_ADDR="10.1.2.3")
    assert r.status_code == 401 and "error" in r.json()
    assert staff_client.get("/api/v1/ai-options/voices", REMOTE_ADDR="10.1.2.3").status_code == 200


def test_providers_report_key_presence_never_keys(client, settings, loopback_reads):
    settings.GROQ_API_KEY = "gsk_supersecret"
    r = client.get("/api/v1/ai-options/providers")
    assert r.status_code == 200
    body = r.content.decode()
    assert "gsk_supersecret" not in body
    data = r.json()
    groq = next(p for p in data["llm"] if p["id"] == "groq")
    assert groq["key_configured"] is True
    llama = next(m for m in groq["models"] if m["id"] == "llama-3.3-70b-versatile")
    assert llama["retired"] and not llama["available"]
    assert data["selected"]["llm"] == {"provider": "groq", "model": "openai/gpt-oss-20b"}
    assert {p["id"] for p in data["tts"]} == {"cartesia", "google", "offline"}


def test_config_get(client, loopback_reads):
    data = client.get("/api/v1/ai-options/config").json()
    assert data["llm"]["model"] == "openai/gpt-oss-20b"
    assert "effective" in data and "turn" in data


def test_campaign_voice_with_session(staff_client, campaign):
    r = post(staff_client, f"/api/v1/campaigns/{campaign.pk}/voice", LEDA)
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "ok"
    campaign.refresh_from_db()
    assert campaign.voice_id == "en-US-Chirp3-HD-Leda"


def test_campaign_voice_with_token(client, token, campaign):
    r = post(client, f"/api/v1/campaigns/{campaign.pk}/voice", LEDA, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert r.status_code == 200
    change = AIConfigChange.objects.get()
    assert change.source == "api" and change.user.username == "op"


@pytest.mark.parametrize("body,status,fragment", [
    ({"voice_id": "nope", "provider": "google"}, 400, "unknown voice"),
    ({"voice_id": "en-US-Chirp3-HD-Leda", "provider": "cartesia"}, 400, "belongs to provider"),
    ({"voice_id": "en-US-Chirp3-HD-Leda"}, 400, "required"),
    ({"voice_id": "en-US-Chirp3-HD-Leda", "provider": "google", "x": 1}, 400, "unknown field"),
    ("{not json", 400, "not valid JSON"),
    ("[1,2]", 400, "JSON object"),
    ("", 400, "JSON object"),
    ({"voice_id": 5, "provider": "google"}, 400, "voice_id must be a string"),
])
def test_campaign_voice_errors_change_nothing(staff_client, campaign, body, status, fragment):
    r = post(staff_client, f"/api/v1/campaigns/{campaign.pk}/voice", body)
    assert r.status_code == status
    assert r["Content-Type"] == "application/json"
    assert fragment in r.json()["error"]
    campaign.refresh_from_db()
    assert campaign.voice_id == "" and AIConfigChange.objects.count() == 0


def test_campaign_voice_unknown_campaign_404(staff_client):
    r = post(staff_client, "/api/v1/campaigns/424242/voice", LEDA)
    assert r.status_code == 404 and "does not exist" in r.json()["error"]
    r = staff_client.get("/api/v1/campaigns/abc/voice")
    assert r.status_code == 404 and r["Content-Type"] == "application/json"


def test_writes_need_staff(client, plain_user, campaign):
    assert post(client, f"/api/v1/campaigns/{campaign.pk}/voice", LEDA).status_code == 401
    client.force_login(plain_user)
    r = post(client, f"/api/v1/campaigns/{campaign.pk}/voice", LEDA)
    assert r.status_code == 403 and "staff" in r.json()["error"]
    r = post(client, f"/api/v1/campaigns/{campaign.pk}/voice", LEDA, HTTP_AUTHORIZATION="Bearer tk_wrong")
    assert r.status_code in (401, 403)
    campaign.refresh_from_db()
    assert campaign.voice_id == ""


def test_session_writes_are_csrf_checked(staff, campaign):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    c.force_login(staff)
    r = post(c, f"/api/v1/campaigns/{campaign.pk}/voice", LEDA)
    assert r.status_code == 403 and "CSRF" in r.json()["error"]


def test_wrong_method_is_json_405(staff_client, campaign):
    r = staff_client.get(f"/api/v1/campaigns/{campaign.pk}/voice")
    assert r.status_code == 405 and r.json()["error"].startswith("method GET")


def test_config_post_is_all_or_nothing(staff_client):
    before = get_ai_config().version
    r = post(staff_client, "/api/v1/ai-options/config",
             {"llm": {"provider": "openai", "model": "gpt-4o-mini"}, "turn": {"eot_threshold": 3}})
    assert r.status_code == 400 and "eot_threshold" in r.json()["error"]
    assert get_ai_config().version == before and get_ai_config().llm_provider == "groq"
    r = post(staff_client, "/api/v1/ai-options/config",
             {"llm": {"provider": "openai", "model": "gpt-4o-mini"}, "tts": LEDA, "turn": {"eager_eot_threshold": 0.5}})
    assert r.status_code == 200, r.content
    cfg = get_ai_config()
    assert (cfg.llm_provider, cfg.tts_voice_id, cfg.eager_eot_threshold) == ("openai", LEDA["voice_id"], 0.5)


def test_config_post_needs_auth(client):
    r = post(client, "/api/v1/ai-options/config", {"tts": LEDA})
    assert r.status_code == 401


def test_campaign_list(client, campaign, loopback_reads):
    data = client.get("/api/v1/campaigns").json()
    assert data[0]["extension"] == "100" and data[0]["voice"]["voice_id"] is None


def test_page_requires_staff(staff_client, plain_user):
    from django.test import Client

    assert Client().get("/ai-options/").status_code == 302
    nonstaff = Client()
    nonstaff.force_login(plain_user)
    assert nonstaff.get("/ai-options/").status_code == 302
    r = staff_client.get("/ai-options/")
    assert r.status_code == 200
    html = r.content.decode()
    assert 'ws-connect="/api/v1/ai-options/ws?format=html"' in html
    assert html.count("<option value=\"google:en-US-Chirp3-HD-") >= 8


def test_page_save_voice_and_error(staff_client):
    r = staff_client.post("/ai-options/save", {"voice": "google:en-US-Chirp3-HD-Kore"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "Saved" in r.content.decode()
    assert get_ai_config().tts_voice_id == "en-US-Chirp3-HD-Kore"
    r = staff_client.post("/ai-options/save", {"voice": "google:bogus"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 400 and "unknown voice" in r.content.decode()
    assert get_ai_config().tts_voice_id == "en-US-Chirp3-HD-Kore"


def test_admin_campaign_voice_dropdown_grouped(staff_client, staff, campaign):
    staff.is_superuser = True
    staff.save()
    r = staff_client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    html = r.content.decode()
    assert r.status_code == 200
    assert '<optgroup label="Cartesia">' in html and '<optgroup label="Google Chirp 3 HD">' in html
    assert "Leda (female)" in html
    data = {"name": "Acme", "extension": "100", "active": "on", "is_default": "on", "system_prompt": "p",
            "greeting": "g", "preview_text": "", "voice": "google:en-US-Chirp3-HD-Leda", "llm": "",
            # the outbound dialer settings inline (none here): its management form
            "dialer-TOTAL_FORMS": "0", "dialer-INITIAL_FORMS": "0", "dialer-MIN_NUM_FORMS": "0",
            "dialer-MAX_NUM_FORMS": "1"}
    r = staff_client.post(f"/admin/campaigns/campaign/{campaign.pk}/change/", data)
    assert r.status_code == 302, r.content.decode()[:2000]
    campaign.refresh_from_db()
    assert campaign.voice_id == "en-US-Chirp3-HD-Leda"
    assert AIConfigChange.objects.filter(source="admin").count() == 1
    katie = "cartesia:f786b574-daa5-4673-aa0c-cbe3e8534c02"
    r = staff_client.post("/admin/campaigns/campaign/add/", dict(data, extension="200", is_default="", voice=katie))
    assert r.status_code == 302
    assert Campaign.objects.get(extension="200").voice_provider == "cartesia"
