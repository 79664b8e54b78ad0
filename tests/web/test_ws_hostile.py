"""Hostile frames on the AI options WebSocket: each gets one JSON error reply, nothing is saved, and
the same connection answers the next (valid) frame — no crash, no dropped socket."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as dj_settings
from django.contrib.auth import get_user_model
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioptions.models import AIConfigChange
from aioptions.selectors import get_ai_config
from campaigns.models import Campaign
from talky.asgi import application

from .hostile import Raw, dumps, hostile, hostile_number_field

pytestmark = pytest.mark.django_db(transaction=True)

PROPS = settings(max_examples=80, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                        HealthCheck.data_too_large, HealthCheck.large_base_example])
# A valid frame that changes nothing (5000 is the default): the reply proves the socket still works.
PROBE = {"action": "update_turn", "eot_timeout_ms": 5000}


@pytest.fixture
async def ws():
    def cookie():
        user = get_user_model().objects.create_user("op", password="pw-123456", is_staff=True)
        c = Client()
        c.force_login(user)
        return c.cookies[dj_settings.SESSION_COOKIE_NAME].value

    value = await sync_to_async(cookie)()
    await sync_to_async(Campaign.objects.create)(name="A", extension="100")
    comm = WebsocketCommunicator(application, "/api/v1/ai-options/ws", headers=[
        (b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000"),
        (b"cookie", f"{dj_settings.SESSION_COOKIE_NAME}={value}".encode())])
    connected, _ = await comm.connect()
    assert connected
    yield comm
    await comm.disconnect()


def frames():
    return st.one_of(
        hostile.map(lambda h: {"action": "update_llm", "provider": h, "model": "openai/gpt-oss-20b"}),
        hostile.map(lambda h: {"action": "update_tts_voice", "provider": "google", "voice_id": h}),
        hostile.map(lambda h: {"action": "update_campaign_voice", "campaign_id": h, "provider": "google",
                               "voice_id": "en-US-Chirp3-HD-Kore"}),
        hostile_number_field.map(lambda h: {"action": "update_turn", "eot_timeout_ms": h}),
        hostile_number_field.map(lambda h: {"action": "update_turn", "eot_threshold": h}),
        hostile.map(lambda h: {"action": h}),
        hostile.map(lambda h: {"action": "update_llm", "data": h}),
        hostile,
    ).map(dumps)


async def saved() -> tuple[int, int]:
    def read():
        return get_ai_config().version, AIConfigChange.objects.count()

    return await sync_to_async(read)()


async def assert_error_then_alive(comm, frame: str) -> None:
    await comm.send_to(text_data=frame)
    reply = await comm.receive_json_from(timeout=5)
    assert reply["status"] == "error" and isinstance(reply["error"], str) and "field" in reply, reply
    await comm.send_json_to(PROBE)
    reply = await comm.receive_json_from(timeout=5)
    assert reply["status"] == "ok" and reply["action"] == "update_turn", reply
    assert await saved() == (0, 0)


@PROPS
@given(frame=frames())
async def test_hostile_frames_get_an_error_and_the_socket_keeps_answering(ws, frame):
    await assert_error_then_alive(ws, frame)


@pytest.mark.parametrize("frame", [
    json.dumps({"action": "update_turn", "eot_timeout_ms": 10**401}),  # crashed the consumer before
    dumps({"action": "update_turn", "eot_threshold": Raw("9" * 5000)}),
    "[" * 50_000 + "]" * 50_000,
    dumps({"action": "update_campaign_voice", "campaign_id": 10**30, "provider": "google",
           "voice_id": "en-US-Chirp3-HD-Kore"}),
    json.dumps({"action": "update_llm", "provider": "groq\x00", "model": "openai/gpt-oss-20b"}),
    json.dumps({"action": "update_llm", "provider": "x" * 100_000, "model": "m"}),
])
async def test_issue_probes(ws, frame):
    await assert_error_then_alive(ws, frame)


async def test_binary_and_oversize_frames(ws, settings):
    await ws.send_to(bytes_data=b"\x00\xff")
    assert (await ws.receive_json_from(timeout=5))["status"] == "error"
    await assert_error_then_alive(ws, json.dumps({"action": "update_llm", "provider": "a" * (70 * 1024)}))
