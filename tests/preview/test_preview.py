"""Voice previews through the real TTS clients against the fake Cartesia/Google servers."""

import asyncio
import wave
from io import BytesIO

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import AsyncClient

from aioptions.fakes.cartesia_server import FakeCartesiaServer
from aioptions.fakes.google_tts_server import FakeGoogleTTSServer
from aioptions.preview import service

pytestmark = pytest.mark.django_db(transaction=True)
KATIE = "f786b574-daa5-4673-aa0c-cbe3e8534c02"
KORE = "en-US-Chirp3-HD-Kore"


@pytest.fixture
async def client():
    user = await sync_to_async(get_user_model().objects.create_user)("op", password="pw-123456", is_staff=True)
    c = AsyncClient()
    await sync_to_async(c.force_login)(user)
    return c


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
async def fakes(settings, media):
    cart = await FakeCartesiaServer(ttfb_ms=60, speedup=0).start()
    goog = await FakeGoogleTTSServer(ttfb_ms=60, speedup=0).start()
    settings.CARTESIA_API_KEY = "ca"
    settings.CARTESIA_BASE_URL, settings.CARTESIA_WS_URL = cart.http_url, cart.ws_url
    settings.GOOGLE_TTS_INSECURE_ENDPOINT = goog.endpoint
    yield cart, goog
    await cart.stop()
    await goog.stop()


def duration(wav_bytes: bytes) -> float:
    with wave.open(BytesIO(wav_bytes)) as w:
        return w.getnframes() / w.getframerate()


async def test_first_request_calls_provider_second_is_cached(client, fakes):
    cart, _ = fakes
    url = f"/api/v1/ai-options/voices/{KATIE}/preview?text=Hello%20there"
    r1 = await client.get(url)
    assert r1.status_code == 200 and r1["Content-Type"] == "audio/wav"
    assert int(r1["Content-Length"]) == len(r1.content) and duration(r1.content) > 0.3
    assert r1["X-Preview-Engine"] == "cartesia" and r1["X-Preview-Cache"] == "miss" and r1["ETag"]
    r2 = await client.get(url)
    assert r2.content == r1.content and r2["X-Preview-Cache"] == "hit"
    assert cart.requests_by_voice[KATIE] == 1  # the second one never reached the provider
    r3 = await client.get(url, headers={"If-None-Match": r1["ETag"]})
    assert r3.status_code == 304


async def test_concurrent_first_requests_make_one_provider_call(client, fakes):
    _, goog = fakes
    url = f"/api/v1/ai-options/voices/{KORE}/preview?text=Concurrent"
    results = await asyncio.gather(*(client.get(url) for _ in range(8)))
    assert all(r.status_code == 200 for r in results)
    assert len({r.content for r in results}) == 1
    assert goog.requests_by_voice[KORE] == 1


async def test_provider_failure_is_502_and_caches_nothing(client, fakes, media):
    cart, _ = fakes
    cart.error_voices = {KATIE: (500, "internal", "synthesis exploded")}
    r = await client.get(f"/api/v1/ai-options/voices/{KATIE}/preview?text=boom")
    assert r.status_code == 502 and "cartesia" in r.json()["error"]
    assert not list((media / "preview-cache").glob("*.wav")) if (media / "preview-cache").exists() else True


async def test_errors_unknown_voice_long_text_and_auth(client, fakes):
    assert (await client.get("/api/v1/ai-options/voices/nope/preview")).status_code == 404
    r = await client.get(f"/api/v1/ai-options/voices/{KATIE}/preview?text=" + "a" * 201)
    assert r.status_code == 400 and "200" in r.json()["error"]
    assert (await AsyncClient().get(f"/api/v1/ai-options/voices/{KATIE}/preview")).status_code == 401


async def test_settings_change_invalidates_and_no_key_uses_offline(client, fakes, settings):
    cart, _ = fakes
    url = f"/api/v1/ai-options/voices/{KATIE}/preview?text=Same%20text"
    await client.get(url)
    settings.CARTESIA_WS_URL = cart.ws_url + "/"  # a different endpoint: old entries no longer apply
    r = await client.get(url)
    assert r["X-Preview-Cache"] == "miss" and cart.requests_by_voice[KATIE] == 2
    settings.CARTESIA_API_KEY = ""
    r = await client.get(url)
    assert r.status_code == 200 and r["X-Preview-Engine"] == "offline"


async def test_lru_eviction_at_the_cap_and_clear_command(client, fakes, settings, media):
    settings.PREVIEW_CACHE_MAX_BYTES = 10**9
    texts = ["one", "two", "three"]
    for t in texts:
        await client.get(f"/api/v1/ai-options/voices/{KORE}/preview?text={t}")
        await asyncio.sleep(0.05)
    store = service.cache()
    sizes = [s for _, s, _ in store.entries()]
    await client.get(f"/api/v1/ai-options/voices/{KORE}/preview?text=one")  # "one" becomes most recent
    settings.PREVIEW_CACHE_MAX_BYTES = sum(sizes) - 1  # room for two of the three
    store = service.cache()
    removed = store.evict()
    assert len(removed) == 1
    keys_left = {p.stem for _, _, p in store.entries()}
    from aioptions import catalog

    voice = catalog.get_voice(KORE)
    assert service.cache_key(voice, "two") not in keys_left  # least recently used went first
    assert service.cache_key(voice, "one") in keys_left
    await sync_to_async(call_command)("clear_preview_cache")
    assert service.cache().entries() == []
