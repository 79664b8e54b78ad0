"""Hostile values against every JSON endpoint: always a 4xx with a JSON body, never a 500 or an HTML
page, and nothing saved. Property tests (hypothesis) plus the exact probes from issue 12."""

import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioptions.models import AIConfigChange
from aioptions.selectors import get_ai_config

from .hostile import Raw, campaign_voice_bodies, config_bodies, control_strings, dumps, raw_bodies

pytestmark = pytest.mark.django_db

CONFIG = "/api/v1/ai-options/config"
PROPS = settings(max_examples=120, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                        HealthCheck.data_too_large, HealthCheck.large_base_example])


def assert_json_4xx(r, status: int | None = None) -> dict:
    assert 400 <= r.status_code < 500, (r.status_code, r.content[:300])
    if status is not None:
        assert r.status_code == status, r.content[:300]
    assert r["Content-Type"] == "application/json", r["Content-Type"]
    body = json.loads(r.content)
    assert isinstance(body["error"], str) and body["error"] and "field" in body
    return body


def assert_nothing_saved(campaign=None) -> None:
    cfg = get_ai_config()
    assert cfg.version == 0 and cfg.llm_provider == "groq" and cfg.eot_timeout_ms == 5000
    assert AIConfigChange.objects.count() == 0
    if campaign is not None:
        campaign.refresh_from_db()
        assert campaign.voice_id == ""


def post_raw(client, url, body: bytes | str, token=None, ctype="application/json"):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(url, data=body, content_type=ctype, **extra)


# --- properties ----------------------------------------------------------------------------------

@PROPS
@given(body=config_bodies())
def test_config_post_hostile_values(token, body):
    r = post_raw(Client(), CONFIG, dumps(body), token)
    assert_json_4xx(r)
    assert_nothing_saved()


@PROPS
@given(body=campaign_voice_bodies())
def test_campaign_voice_hostile_values(token, campaign, body):
    r = post_raw(Client(), f"/api/v1/campaigns/{campaign.pk}/voice", dumps(body), token)
    assert_json_4xx(r)
    assert_nothing_saved(campaign)


@PROPS
@given(body=raw_bodies)
def test_raw_hostile_bodies(token, body):
    assert_json_4xx(post_raw(Client(), CONFIG, body, token))
    assert_nothing_saved()


@PROPS
@given(host=st.one_of(control_strings, st.text(min_size=254, max_size=400), st.just("-f"), st.just("a b")),
       port=st.one_of(st.none(), st.integers(min_value=70000), st.integers(max_value=0),
                      st.text(alphabet="0123456789", min_size=20, max_size=401), st.just("²")))
def test_sip_start_hostile_query(token, settings, tmp_path, host, port):
    settings.VAR_DIR = tmp_path
    params = {"host": host, "agent": "echo"}
    if port is not None:
        params["port"] = port
    r = Client().post("/api/v1/sip/start?" + "&".join(f"{k}={_q(v)}" for k, v in params.items()),
                      HTTP_AUTHORIZATION=f"Bearer {token}")
    body = assert_json_4xx(r, 400)
    assert body["field"] in ("host", "port")
    assert Client().get("/api/v1/sip/status", HTTP_AUTHORIZATION=f"Bearer {token}").json()["status"] == "stopped"


@PROPS
@given(query=st.one_of(
    st.builds(lambda t: {"text": t}, st.one_of(control_strings, st.text(min_size=201, max_size=300))),
    st.builds(lambda c: {"campaign": c}, st.one_of(st.just("²"), st.just("0"), st.just("-1"),
                                                   st.text(alphabet="0123456789", min_size=20, max_size=50)))))
def test_preview_hostile_query(token, query):
    url = "/api/v1/ai-options/voices/en-US-Chirp3-HD-Leda/preview?" + "&".join(f"{k}={_q(v)}" for k, v in
                                                                               query.items())
    body = assert_json_4xx(Client().get(url, HTTP_AUTHORIZATION=f"Bearer {token}"), 400)
    assert body["field"] in ("text", "campaign")


def _q(value: str) -> str:
    from urllib.parse import quote

    return quote(str(value), safe="")


# --- the probes from the issue, one by one --------------------------------------------------------

def test_401_digit_integer_is_a_field_error(token):
    r = post_raw(Client(), CONFIG, '{"turn": {"eot_timeout_ms": ' + "9" * 401 + "}}", token)
    assert assert_json_4xx(r, 400)["field"] == "turn.eot_timeout_ms"
    assert_nothing_saved()


def test_50000_deep_array_is_a_400(token, settings):
    settings.API_MAX_BODY_BYTES = 1 << 20  # the depth check, not the size limit, must catch it
    r = post_raw(Client(), CONFIG, "[" * 50_000 + "]" * 50_000, token)
    assert "nested deeper" in assert_json_4xx(r, 400)["error"]


def test_10_mb_body_is_json_413(token, session):
    body = b'{"llm": "' + b"a" * (10 * 1024 * 1024) + b'"}'
    assert "limit" in assert_json_4xx(post_raw(Client(), CONFIG, body, token), 413)["error"]
    # a session client is told the same before any CSRF/form parsing reads the body
    assert_json_4xx(post_raw(session, CONFIG, body, ctype="application/x-www-form-urlencoded"), 413)
    assert_nothing_saved()


@pytest.mark.parametrize("host", ["127.0.0.1\x00evil", "a" * 300, "-bad-", "::1\n"])
def test_sip_start_host_with_nul_or_300_chars(token, host, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    r = Client().post(f"/api/v1/sip/start?host={_q(host)}&port=5999&agent=echo", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert assert_json_4xx(r, 400)["field"] == "host"


def test_token_client_must_send_json(token):
    r = post_raw(Client(), CONFIG, json.dumps({"tts": {"provider": "google", "voice_id": "en-US-Chirp3-HD-Leda"}}),
                 token, ctype="text/plain")
    assert_json_4xx(r, 415)
    assert_nothing_saved()


def test_huge_ids_in_urls_and_queries_are_4xx_not_500(token, staff):
    c = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    big = "9" * 30
    assert_json_4xx(c.post(f"/api/v1/campaigns/{big}/voice", '{"voice_id": "", "provider": ""}',
                           content_type="application/json"), 400)
    r = c.get(f"/api/v1/ai-options/voices/en-US-Chirp3-HD-Leda/preview?campaign={big}")
    assert assert_json_4xx(r, 400)["field"] == "campaign"
    assert_json_4xx(c.get("/api/v1/nowhere/" + "x" * 5000), 404)
    page = Client()
    page.force_login(staff)
    assert page.get(f"/calls/{big}/").status_code == 404
    assert page.get(f"/calls/{big}/recording.wav").status_code == 404
    assert page.get("/calls/?campaign=²&llm_model=a%00b").status_code == 200


def test_every_error_names_its_field(token, campaign):
    r = post_raw(Client(), CONFIG, '{"tts": {"provider": "google", "voice_id": "nope"}, "x": 1}', token)
    assert assert_json_4xx(r, 400)["field"] == "x"
    r = post_raw(Client(), CONFIG, '{"turn": {"eot_threshold": 0.6, "eager_eot_threshold": 0.8}}', token)
    assert assert_json_4xx(r, 400)["field"] == "turn.eager_eot_threshold"
    r = post_raw(Client(), f"/api/v1/campaigns/{campaign.pk}/voice", '{"voice_id": "en-US-Chirp3-HD-Leda", '
                 '"provider": "google\\u0000"}', token)
    assert assert_json_4xx(r, 400)["field"] == "provider"
    assert_nothing_saved(campaign)


def test_wrong_token_is_401_even_with_a_session(session):
    r = post_raw(session, CONFIG, '{"tts": {"provider": "google", "voice_id": "en-US-Chirp3-HD-Leda"}}',
                 token="tk_not-a-real-token")
    assert assert_json_4xx(r, 401)["error"].startswith("invalid or revoked")
    assert_nothing_saved()


def test_hostile_raw_helper_is_really_hostile():
    assert dumps({"a": Raw("NaN"), "b": ["\x00"]}) == '{"a": NaN, "b": ["\\u0000"]}'
