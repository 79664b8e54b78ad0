"""The AI options WebSocket through the real ASGI application (auth, origin check, routing)."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from aioptions.models import AIConfigChange
from aioptions.selectors import get_ai_config
from campaigns.models import Campaign
from talky.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True)]

URL = "/api/v1/ai-options/ws"


async def _session_cookie(username: str, staff: bool = True) -> bytes:
    def make():
        user = get_user_model().objects.create_user(username, password="pw-123456", is_staff=staff)
        c = Client()
        c.force_login(user)
        return c.cookies[settings.SESSION_COOKIE_NAME].value

    return f"{settings.SESSION_COOKIE_NAME}={await sync_to_async(make)()}".encode()


async def connect(cookie: bytes | None, path: str = URL, origin: bytes = b"http://127.0.0.1:8000"):
    headers = [(b"origin", origin), (b"host", b"127.0.0.1:8000")]
    if cookie:
        headers.append((b"cookie", cookie))
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await comm.connect()
    return comm, connected, code


async def test_anonymous_and_non_staff_are_refused():
    comm, connected, _ = await connect(None)
    assert not connected
    comm, connected, _ = await connect(await _session_cookie("joe", staff=False))
    assert not connected


async def test_foreign_origin_is_refused():
    comm, connected, _ = await connect(await _session_cookie("op"), origin=b"http://evil.example.com")
    assert not connected


async def test_update_voice_broadcasts_to_every_client():
    cookie = await _session_cookie("op")
    a, ok_a, _ = await connect(cookie)
    b, ok_b, _ = await connect(cookie)
    assert ok_a and ok_b
    await a.send_json_to({"action": "update_tts_voice", "provider": "google", "voice_id": "en-US-Chirp3-HD-Leda"})
    replies = [await a.receive_json_from(timeout=3), await a.receive_json_from(timeout=3)]
    ok = next(r for r in replies if r.get("status") == "ok")
    assert ok["config"]["tts"]["voice_id"] == "en-US-Chirp3-HD-Leda"
    assert any(r.get("type") == "config_updated" for r in replies)
    pushed = await b.receive_json_from(timeout=3)
    assert pushed["type"] == "config_updated"
    assert pushed["config"]["tts"]["voice_id"] == "en-US-Chirp3-HD-Leda"
    cfg = await sync_to_async(get_ai_config)()
    assert cfg.tts_voice_id == "en-US-Chirp3-HD-Leda"
    await a.disconnect()
    await b.disconnect()


@pytest.mark.parametrize("message,fragment", [
    ("{oops", "not valid JSON"),
    ("[1]", "JSON object"),
    (json.dumps({"action": "drop_tables"}), "unknown action"),
    (json.dumps({"nope": 1}), "unknown action"),
    (json.dumps({"action": "update_llm", "provider": "groq", "model": "gpt-9"}), "unknown model"),
    (json.dumps({"action": "update_tts_voice", "provider": "google", "voice_id": "x"}), "unknown voice"),
    (json.dumps({"action": "update_turn", "eot_threshold": 2}), "between"),
    (json.dumps({"action": "update_campaign_voice", "campaign_id": 999, "provider": "google",
                 "voice_id": "en-US-Chirp3-HD-Kore"}), "does not exist"),
    (json.dumps({"action": "update_campaign_voice", "campaign_id": "x", "provider": "google",
                 "voice_id": "en-US-Chirp3-HD-Kore"}), "integer"),
])
async def test_bad_messages_get_errors_and_change_nothing(message, fragment):
    comm, connected, _ = await connect(await _session_cookie("op"))
    assert connected
    await comm.send_to(text_data=message)
    reply = await comm.receive_json_from(timeout=3)
    assert reply["status"] == "error" and fragment in reply["error"]
    assert await sync_to_async(AIConfigChange.objects.count)() == 0
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_campaign_voice_and_turn_actions():
    c = await sync_to_async(Campaign.objects.create)(name="A", extension="100")
    comm, connected, _ = await connect(await _session_cookie("op"))
    await comm.send_json_to({"action": "update_campaign_voice", "campaign_id": c.pk, "provider": "google",
                             "voice_id": "en-US-Chirp3-HD-Orus"})
    msgs = [await comm.receive_json_from(timeout=3) for _ in range(2)]
    assert any(m.get("status") == "ok" and m["campaign"]["voice"]["voice_id"] == "en-US-Chirp3-HD-Orus"
               for m in msgs)
    await comm.send_json_to({"action": "update_turn", "eot_threshold": 0.8, "eager_eot_threshold": 0.4,
                             "eot_timeout_ms": 2000})
    msgs = [await comm.receive_json_from(timeout=3) for _ in range(2)]
    ok = next(m for m in msgs if m.get("status") == "ok")
    flux = {k: ok["config"]["turn"][k] for k in ("eot_threshold", "eager_eot_threshold", "eot_timeout_ms")}
    assert flux == {"eot_threshold": 0.8, "eager_eot_threshold": 0.4, "eot_timeout_ms": 2000}
    await comm.disconnect()


async def test_html_clients_get_oob_fragments():
    comm, connected, _ = await connect(await _session_cookie("op"), path=URL + "?format=html")
    assert connected
    from aioptions import services

    await sync_to_async(services.update_tts_voice)(provider="google", voice_id="en-US-Chirp3-HD-Zephyr")
    html = await comm.receive_from(timeout=3)
    assert 'id="current"' in html and 'hx-swap-oob="true"' in html and "Zephyr" in html
    await comm.disconnect()
