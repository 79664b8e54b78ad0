"""The browser transport: BrowserCall (CallHandle over WebSocket frames) and the /ws/talk/ consumer
running the real pipeline with the offline engines (no keys)."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from telephony.browser.media import FRAME, MAX_INBOUND_FRAMES, SILENCE, BrowserCall
from telephony.media.contract import HangupEvent


class Recorder:
    def __init__(self):
        self.frames = []

    def write(self, caller, agent):
        self.frames.append((caller, agent))


def _call(**kw):
    sent, control = [], []
    call = BrowserCall(call_id="b1", caller_uri="browser:op", record_id=None, campaign_id=None,
                       send_audio=sent.append, send_control=control.append, recorder=Recorder(), **kw)
    return call, sent, control


def test_ticks_pace_both_directions_and_record_them():
    call, sent, _ = _call()
    call.feed(b"\x01" * FRAME + b"\x02" * 50)  # one frame and a partial one
    call.feed(b"\x02" * (FRAME - 50))
    marks = []
    call.play(b"\x10" * (FRAME + 10), on_sent=marks.append)
    for n in range(4):
        call.tick(100.0 + n * 0.02, n)
    assert [c[:1] for c, _ in call.recorder.frames] == [b"\x01", b"\x02", b"\xff", b"\xff"]  # silence when none came
    assert [a[:1] for _, a in call.recorder.frames] == [b"\x10", b"\x10", b"\xff", b"\xff"]
    assert len(sent) == 2 and all(len(f) == FRAME for f in sent)  # only agent audio goes to the page
    assert marks == [100.0]  # on_sent = the tick that sent the first frame
    assert call.frames_concealed == 2


def test_inbound_backlog_is_bounded():
    call, _, _ = _call()
    call.feed(b"\x01" * FRAME * 10)
    call.feed(b"\x02" * FRAME * 10)
    assert len(call._inbound) == MAX_INBOUND_FRAMES and call.frames_dropped == 10
    assert call._inbound[0][:1] == b"\x02"  # the newest audio is kept


def test_clear_playout_drops_the_queue_and_tells_the_page():
    call, sent, control = _call()
    call.play(b"\x10" * FRAME * 5)
    assert call.playout_queued_bytes == FRAME * 5
    assert call.clear_playout() == FRAME * 5
    assert control == [{"type": "clear"}]
    call.tick(1.0)
    assert sent == [] and call.playout_queued_bytes == 0


async def test_hangup_plays_out_then_ends_audio_and_events():
    call, sent, _ = _call()
    call.play(b"\x10" * FRAME * 2)

    async def clock():
        n = 0
        while not call.ended.is_set():
            call.tick(n * 0.02, n)
            n += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(clock())
    await asyncio.wait_for(call.hangup("agent"), 5)
    await ticker
    assert len(sent) == 2 and call.end_reason == "agent"
    events = [ev async for ev in call.events()]
    assert isinstance(events[-1], HangupEvent)
    frames = [f async for f in call.audio_in()]
    assert all(f == SILENCE for f in frames)


# --- the consumer, through the real ASGI application ---------------------------------------------

async def _cookie(username: str, staff: bool = True) -> bytes:
    def make():
        user = get_user_model().objects.create_user(username, password="pw-123456", is_staff=staff)
        c = Client()
        c.force_login(user)
        return c.cookies[settings.SESSION_COOKIE_NAME].value

    return f"{settings.SESSION_COOKIE_NAME}={await sync_to_async(make)()}".encode()


async def _connect(cookie, path="/ws/talk/", origin=b"http://127.0.0.1:8000"):
    from talky.asgi import application

    headers = [(b"origin", origin), (b"host", b"127.0.0.1:8000")]
    if cookie:
        headers.append((b"cookie", cookie))
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await comm.connect(timeout=10)
    return comm, connected, code


@pytest.mark.django_db(transaction=True)
async def test_only_staff_from_our_origin_may_talk():
    comm, ok, code = await _connect(await _cookie("joe", staff=False))
    assert not ok and code == 4403
    comm, ok, _ = await _connect(None)
    assert not ok
    comm, ok, _ = await _connect(await _cookie("op"), origin=b"http://evil.example")
    assert not ok
    comm, ok, code = await _connect(await _cookie("op2"), path="/ws/talk/?campaign=999999")
    assert not ok and code == 4404


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
async def test_browser_call_greets_records_and_is_finalised(settings, tmp_path):
    from campaigns.models import Campaign
    from telephony.models import Call

    settings.MEDIA_ROOT = str(tmp_path)
    camp = await sync_to_async(Campaign.objects.create)(name="Acme", extension="100", greeting="Hello from Acme.")
    comm, ok, _ = await _connect(await _cookie("op"), path=f"/ws/talk/?campaign={camp.pk}")
    assert ok
    started = json.loads((await comm.receive_output(timeout=10))["text"])
    assert started["type"] == "started" and started["greeting"] == "Hello from Acme."
    audio = 0
    while audio < FRAME * 25:  # half a second of the greeting reaches the page
        message = await comm.receive_output(timeout=20)
        if message.get("bytes"):
            audio += len(message["bytes"])
        for _ in range(1):  # the page keeps sending microphone frames (silence)
            await comm.send_to(bytes_data=b"\xff" * FRAME)
    await comm.send_to(text_data=json.dumps({"action": "hangup"}))
    ended = None
    while ended is None:
        message = await comm.receive_output(timeout=20)
        if message.get("type") == "websocket.close":
            break
        if message.get("text") and json.loads(message["text"])["type"] == "ended":
            ended = json.loads(message["text"])
    assert ended and ended["reason"] == "bye" and ended["call"] == started["call"]
    call = await sync_to_async(Call.objects.get)(pk=started["call"])
    assert call.end_reason == "bye" and call.campaign_id == camp.pk and call.dialed == "browser"
    assert call.caller_uri == "browser:op" and call.ended_at is not None and call.packets_out >= 25
    assert call.recording and (tmp_path / call.recording.name).stat().st_size > 44 + FRAME * 25 * 4
    await comm.disconnect()
