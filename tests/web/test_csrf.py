"""CSRF on every cookie-authenticated write, whatever the content type; bearer tokens unaffected;
the options page (form + HTMX, which send the token) keeps saving."""

import json

import pytest
from django.test import Client, RequestFactory

from aioptions.models import AIConfigChange
from aioptions.selectors import get_ai_config

pytestmark = pytest.mark.django_db

CONFIG = "/api/v1/ai-options/config"
LLM = json.dumps({"llm": {"provider": "openai", "model": "gpt-4o-mini"}})


def csrf_token_for(client: Client) -> str:
    """The token a page rendered for this session would carry (and the cookie that goes with it)."""
    r = client.get("/ai-options/")
    assert r.status_code == 200
    return client.cookies["csrftoken"].value


@pytest.mark.parametrize("ctype", ["text/plain", "application/json", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x"])
def test_cross_origin_post_with_only_the_cookie_is_refused(session, ctype):
    """The issue's attack: another port's page posts text/plain with the victim's session cookie."""
    r = session.post(CONFIG, data=LLM, content_type=ctype, HTTP_ORIGIN="http://127.0.0.1:9999")
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    assert get_ai_config().llm_provider == "groq" and AIConfigChange.objects.count() == 0


def test_session_write_with_the_token_works(session):
    token = csrf_token_for(session)
    r = session.post(CONFIG, data=LLM, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 200, r.content
    assert get_ai_config().llm_provider == "openai"
    assert AIConfigChange.objects.filter(source="api").count() == 2


def test_bearer_token_needs_no_csrf(token):
    c = Client(enforce_csrf_checks=True)
    r = c.post(CONFIG, data=LLM, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert r.status_code == 200, r.content


@pytest.mark.parametrize("url,body", [
    ("/api/v1/campaigns/1/voice", '{"voice_id": "", "provider": ""}'),
    ("/api/v1/sip/start?port=5999&agent=echo", ""),
    ("/api/v1/sip/stop", ""),
])
def test_every_session_write_endpoint_checks_csrf(session, campaign, url, body):
    r = session.post(url, data=body, content_type="text/plain")
    assert r.status_code == 403 and r["Content-Type"] == "application/json"


def test_page_and_htmx_saves_send_the_token_and_work(session):
    token = csrf_token_for(session)
    html = session.get("/ai-options/").content.decode()
    assert '"X-CSRFToken": "' in html  # base.html hands htmx the token for every request
    r = session.post("/ai-options/save", {"voice": "google:en-US-Chirp3-HD-Kore"}, HTTP_HX_REQUEST="true",
                     HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 200 and "Saved" in r.content.decode()
    r = session.post("/ai-options/save", {"voice": "google:en-US-Chirp3-HD-Leda"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 403
    assert get_ai_config().tts_voice_id == "en-US-Chirp3-HD-Kore"


def test_csrf_failure_under_api_is_json_elsewhere_html(rf: RequestFactory):
    from talky.errors import csrf_failure

    r = csrf_failure(rf.post("/api/v1/anything"), reason="x")
    assert r.status_code == 403 and r["Content-Type"] == "application/json"
    r = csrf_failure(rf.post("/admin/"), reason="x")
    assert r.status_code == 403 and "text/html" in r["Content-Type"]
