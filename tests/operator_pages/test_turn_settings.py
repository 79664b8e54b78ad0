"""Turn settings on the options page: validated and saved through update_config (the API's path),
CSRF-checked, pushed to open pages (the ai_options group) and applied by a live call's pipeline."""

import re

import pytest
from channels.layers import get_channel_layer

from aioptions import services
from aioptions.events import CONFIG_GROUP
from aioptions.models import AIConfigChange
from aioptions.selectors import get_ai_config, resolve_config
from telephony.pipeline.fillers import TurnDeadlines

pytestmark = pytest.mark.django_db

FORM = {"eot_threshold": "0.8", "eot_timeout_ms": "4000", "eager_on": "on", "eager_eot_threshold": "0.6",
        "barge_in": "on", "barge_in_min_ms": "300", "max_call_s": "600", "filler_ms": "1200",
        "apology_ms": "3500"}


def _token(client) -> str:
    page = client.get("/ai-options/")
    assert page.status_code == 200
    return re.search(r'"X-CSRFToken": "([^"]+)"', page.content.decode()).group(1)


def test_page_shows_every_turn_setting(csrf_client):
    html = csrf_client.get("/ai-options/").content.decode()
    for name in ("eot_threshold", "eot_timeout_ms", "eager_on", "eager_eot_threshold", "barge_in", "barge_in_min_ms",
                 "max_call_s", "filler_ms", "apology_ms"):
        assert f'name="{name}"' in html, name
    assert 'id="turn-form"' in html


def test_page_saves_turn_settings_through_the_service(csrf_client, staff):
    token = _token(csrf_client)
    before = get_ai_config().version
    r = csrf_client.post("/ai-options/turn", FORM, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 200, r.content
    cfg = get_ai_config()
    assert (cfg.eot_threshold, cfg.eager_eot_threshold, cfg.eot_timeout_ms) == (0.8, 0.6, 4000)
    assert (cfg.barge_in, cfg.barge_in_min_ms, cfg.max_call_s, cfg.filler_ms, cfg.apology_ms) == (True, 300, 600,
                                                                                              1200, 3500)
    assert cfg.version == before + 1  # one save = one version
    sources = set(AIConfigChange.objects.values_list("source", flat=True))
    assert sources == {"page"}
    assert "Turn settings saved." in r.content.decode()
    # the effective config a call resolves carries them
    turn = resolve_config().turn
    assert (turn.barge_in_min_ms, turn.filler_ms, turn.apology_ms, turn.max_call_s) == (300, 1200, 3500, 600)


def test_unticked_boxes_turn_eager_and_barge_in_off(csrf_client):
    token = _token(csrf_client)
    form = {k: v for k, v in FORM.items() if k not in ("eager_on", "barge_in")}
    assert csrf_client.post("/ai-options/turn", form, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token).status_code == 200
    cfg = get_ai_config()
    assert cfg.eager_eot_threshold is None and cfg.barge_in is False


def test_without_csrf_token_nothing_is_saved(csrf_client):
    before = get_ai_config().version
    r = csrf_client.post("/ai-options/turn", FORM, HTTP_HX_REQUEST="true")
    assert r.status_code == 403
    assert get_ai_config().version == before


@pytest.mark.parametrize("field,value,fragment", [
    ("filler_ms", "4000", "filler_ms (4000) must be less than apology_ms"),
    ("barge_in_min_ms", "5000", "barge_in_min_ms must be between 0 and 2000"),
    ("max_call_s", "10", "max_call_s must be between 30 and 14400"),
    ("eager_eot_threshold", "0.9", "must not exceed eot_threshold"),
    ("eot_timeout_ms", "abc", "eot_timeout_ms must be a number"),
])
def test_page_refuses_what_the_api_refuses(csrf_client, field, value, fragment):
    token = _token(csrf_client)
    before = get_ai_config().version
    r = csrf_client.post("/ai-options/turn", {**FORM, field: value}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 400
    body = r.content.decode()
    assert fragment in body and f'data-field="{field}"' in body
    assert get_ai_config().version == before
    with pytest.raises(services.ValidationError) as exc:  # the same rule through the API's service call
        services.update_config(turn={**{k: v for k, v in FORM.items() if k not in ("eager_on",)}, field: value,
                                     "barge_in": True})
    assert fragment in str(exc.value)


def test_api_accepts_the_new_fields_and_rejects_unknown(client, staff):
    client.force_login(staff)
    r = client.post("/api/v1/ai-options/config", {"turn": {"barge_in": False, "max_call_s": 900}},
                    content_type="application/json")
    assert r.status_code == 200, r.content
    assert r.json()["config"]["turn"]["max_call_s"] == 900 and r.json()["config"]["turn"]["barge_in"] is False
    r = client.post("/api/v1/ai-options/config", {"turn": {"barge_in": "maybe"}}, content_type="application/json")
    assert r.status_code == 400 and r.json()["field"] == "turn.barge_in"


def test_save_is_broadcast_to_the_group(csrf_client, django_capture_on_commit_callbacks):
    """Open pages and live calls listen on the ai_options group: a page save reaches it once."""
    from asgiref.sync import async_to_sync

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(CONFIG_GROUP, channel)
    token = _token(csrf_client)
    with django_capture_on_commit_callbacks(execute=True):
        csrf_client.post("/ai-options/turn", FORM, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    message = async_to_sync(layer.receive)(channel)
    assert message["type"] == "config.updated"
    assert message["payload"]["config"]["turn"]["filler_ms"] == 1200
    assert "filler_ms" in message["payload"]["changed"]


def test_live_update_fragment_carries_the_turn_form():
    from aioptions.consumers import _render_oob
    from aioptions.selectors import config_dict

    services.update_config(turn={"max_call_s": 1234})
    html = _render_oob({"config": config_dict()})
    assert 'id="turn-form"' in html and 'hx-swap-oob="true"' in html and 'value="1234"' in html


def test_deadlines_follow_the_settings():
    d = TurnDeadlines(100.0, filler_s=0.5, apology_s=2.0)
    assert (d.filler_at, d.apology_at) == (100.5, 102.0)
