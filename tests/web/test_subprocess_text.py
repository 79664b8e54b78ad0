"""User text never lands in a subprocess's option positions: the voice preview and the offline
voice (which speaks LLM replies) give espeak-ng the text on stdin. ``-f<file>`` used to make
espeak-ng read that file aloud."""

import asyncio
import wave
from io import BytesIO

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from aioptions.providers.base import MULAW_8K
from aioptions.providers.offline_tts import OfflineTTS
from telephony.agents.greeting import synthesize_wav
from tests.fake_espeak import fake_espeak

pytestmark = pytest.mark.django_db(transaction=True)
LEDA = "en-US-Chirp3-HD-Leda"


@pytest.fixture
def offline(settings, tmp_path):
    """No TTS keys: every preview is spoken by the offline voice (espeak-ng)."""
    settings.CARTESIA_API_KEY = settings.GOOGLE_APPLICATION_CREDENTIALS = ""
    settings.GOOGLE_TTS_INSECURE_ENDPOINT = ""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.OFFLINE_TTS_ENGINE = "espeak"  # these tests watch espeak-ng; Piper's stdin: tests/offline


@pytest.fixture
async def client():
    user = await sync_to_async(get_user_model().objects.create_user)("op", password="pw-123456", is_staff=True)
    c = AsyncClient()
    await sync_to_async(c.force_login)(user)
    return c


OUR_OPTIONS = ["--stdout", "--stdin", "-v", "en-us", "-s"]


def assert_text_on_stdin(call: dict, text: str) -> None:
    """argv is exactly our own options (speed last); the text arrived on stdin, untouched."""
    assert call["argv"][:-1] == OUR_OPTIONS and call["argv"][-1].isdigit(), call["argv"]
    assert call["stdin"] == text, call


@pytest.mark.parametrize("text", ["-f/etc/hostname", "--path=/etc", "-w /tmp/out.wav hello", "--", "-v evil"])
async def test_preview_text_goes_to_stdin(client, offline, tmp_path, monkeypatch, text):
    async with fake_espeak(tmp_path, monkeypatch) as calls:
        r = await client.get(f"/api/v1/ai-options/voices/{LEDA}/preview", {"text": text})
        assert r.status_code == 200 and r["X-Preview-Engine"] == "offline", r.content[:200]
        assert_text_on_stdin(await asyncio.wait_for(calls.get(), 10), text)


async def test_agent_reply_text_goes_to_stdin(tmp_path, monkeypatch):
    """The offline voice speaks whatever the LLM streams (OfflineUtterance.push)."""
    async with fake_espeak(tmp_path, monkeypatch) as calls:
        utt = await OfflineTTS().utterance(MULAW_8K)
        await utt.push("-f/etc/hostname.")
        await utt.finish()
        audio = b"".join([chunk async for chunk in utt.audio()])
        assert audio
        assert_text_on_stdin(await asyncio.wait_for(calls.get(), 10), "-f/etc/hostname.")


async def test_greeting_agent_text_goes_to_stdin(tmp_path, monkeypatch):
    async with fake_espeak(tmp_path, monkeypatch) as calls:
        await synthesize_wav("-f/etc/hostname", tmp_path / "greetings")
        assert_text_on_stdin(await asyncio.wait_for(calls.get(), 10), "-f/etc/hostname")


async def test_real_espeak_speaks_the_option_instead_of_reading_the_file(client, offline, tmp_path):
    """With the real espeak-ng: a planted 300-word file would be ~2 minutes of speech if read."""
    planted = tmp_path / "planted.txt"
    planted.write_text("secret words that must never be spoken " * 50)
    r = await client.get(f"/api/v1/ai-options/voices/{LEDA}/preview", {"text": f"-f{planted}"})
    assert r.status_code == 200, r.content[:200]
    with wave.open(BytesIO(r.content)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert 0.5 < seconds < 20, seconds
