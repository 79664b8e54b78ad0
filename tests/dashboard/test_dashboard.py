import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from campaigns.models import Campaign
from talky.asgi import application
from telephony.dashboard import selectors
from telephony.models import Call, Turn


def seed() -> tuple[Campaign, Call]:
    camp = Campaign.objects.create(name="Acme", extension="100")
    other = Campaign.objects.create(name="Beta", extension="200")
    now = timezone.now()
    call = Call.objects.create(sip_call_id="a", campaign=camp, caller_uri="sip:al@x", answered_at=now,
                               ended_at=now + timezone.timedelta(seconds=30), end_reason="bye", turns_count=3)
    for i, total in enumerate((600.0, 700.0, 900.0)):
        Turn.objects.create(call=call, index=i, user_text=f"q{i}", agent_text=f"a{i}", llm_model="openai/gpt-oss-20b",
                            voice_id="v1", eot_received_ms=250, llm_request_ms=255, llm_first_token_ms=560,
                            tts_request_ms=565, tts_first_audio_ms=total - 10, first_rtp_ms=total,
                            mouth_to_ear_ms=total, llm_ttft_ms=305, tts_ttfb_ms=total - 575, barge_in=i == 1)
    c2 = Call.objects.create(sip_call_id="b", campaign=other)
    Turn.objects.create(call=c2, index=0, llm_model="gpt-4o-mini", voice_id="v2", mouth_to_ear_ms=2000.0,
                        first_rtp_ms=2000.0)
    return camp, call


def test_percentiles_and_filters(db):
    camp, _ = seed()
    assert selectors.percentile([1, 2, 3, 4, 100], 50) == 3 and selectors.percentile([], 50) is None
    stats = {s["field"]: s for s in selectors.stage_stats(selectors.Filters(campaign=camp.pk))}
    assert stats["mouth_to_ear_ms"]["p50"] == 700 and stats["mouth_to_ear_ms"]["p95"] == 900
    assert stats["mouth_to_ear_ms"]["n"] == 3
    by_model = selectors.stage_stats(selectors.Filters(llm_model="gpt-4o-mini"))
    assert by_model[-1]["p50"] == 2000
    assert len(selectors.recent_calls(selectors.Filters(voice_id="v1"))) == 1


@pytest.fixture
def staff_client(db):
    user = get_user_model().objects.create_user("op", password="pw-123456", is_staff=True)
    c = Client()
    c.force_login(user)
    return c


def test_pages_render_with_charts(staff_client):
    _, call = seed()
    html = staff_client.get("/calls/").content.decode()
    assert html.count('class="bar p50"') == 5 and 'id="call-list"' in html and "#" + str(call.pk) in html
    part = staff_client.get("/calls/?campaign=abc&llm_model=x", HTTP_HX_REQUEST="true")
    assert part.status_code == 200 and "<html" not in part.content.decode()
    detail = staff_client.get(f"/calls/{call.pk}/").content.decode()
    assert detail.count("turn ") >= 3 and 'class="chart waterfall"' in detail and "barge-in" in detail
    assert staff_client.get("/calls/99999/").status_code == 404
    assert staff_client.get(f"/calls/{call.pk}/live/").status_code == 200


def test_pages_are_staff_only(db):
    assert Client().get("/calls/").status_code == 302
    u = get_user_model().objects.create_user("joe", password="pw-123456")
    c = Client()
    c.force_login(u)
    assert c.get("/calls/").status_code == 302


@pytest.mark.django_db(transaction=True)
async def test_live_call_socket_renders_turns_as_they_happen():
    def make():
        u = get_user_model().objects.create_user("op", password="pw-123456", is_staff=True)
        c = Client()
        c.force_login(u)
        return c.cookies[settings.SESSION_COOKIE_NAME].value

    cookie = await sync_to_async(make)()
    comm = WebsocketCommunicator(application, "/ws/calls/7/", headers=[
        (b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"),
        (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())])
    connected, _ = await comm.connect()
    assert connected
    from telephony.pipeline import store

    await store.publish(7, {"kind": "partial", "text": "book an appo"})
    assert "book an appo" in await comm.receive_from(timeout=3)
    await store.publish(7, {"kind": "turn", "index": 0, "user_text": "book", "agent_text": "sure",
                            "mouth_to_ear_ms": 640.0, "barge_in": False})
    html = await comm.receive_from(timeout=3)
    assert 'hx-swap-oob="beforeend"' in html and "640" in html
    await comm.disconnect()
    anon = WebsocketCommunicator(application, "/ws/calls/7/", headers=[(b"origin", b"http://127.0.0.1"),
                                                                       (b"host", b"127.0.0.1")])
    assert not (await anon.connect())[0]
    assert get_channel_layer() is not None
