"""Synthesise-or-serve a voice preview. Concurrent requests for the same uncached key share one
provider call (single flight); failures cache nothing."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import wave
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from aioptions import catalog
from aioptions.keys import has_key
from aioptions.providers.base import PCM_16K, ProviderError
from aioptions.providers.factory import build_tts_for

from .cache import PreviewCache

MAX_CHARS = 200
DEFAULT_TEXT = "Hi, this is a quick call about your appointment. Is now a good time to talk?"
_inflight: dict[str, asyncio.Future] = {}


class PreviewError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Preview:
    wav: bytes
    key: str
    engine: str
    cached: bool


def cache() -> PreviewCache:
    return PreviewCache(Path(settings.MEDIA_ROOT) / "preview-cache",
                        int(getattr(settings, "PREVIEW_CACHE_MAX_BYTES", 50 * 1024 * 1024)))


def _fingerprint(provider: str) -> str:
    """Provider settings that change what the audio would be; the key itself only as a hash."""
    def h(value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()[:12] if value else ""

    if provider == "cartesia":
        parts = [settings.CARTESIA_BASE_URL, settings.CARTESIA_WS_URL, h(settings.CARTESIA_API_KEY)]
    elif provider == "google":
        parts = [settings.GOOGLE_TTS_ENDPOINT, settings.GOOGLE_TTS_INSECURE_ENDPOINT,
                 h(settings.GOOGLE_APPLICATION_CREDENTIALS)]
    else:
        parts = []
    return "|".join(parts + [str(has_key("tts", provider))])


def cache_key(voice: catalog.Voice, text: str) -> str:
    raw = json.dumps([voice.provider, voice.id, voice.model, text, "wav-pcm16-16000", _fingerprint(voice.provider)])
    return hashlib.sha256(raw.encode()).hexdigest()


def engine_for(voice: catalog.Voice) -> str:
    return voice.provider if has_key("tts", voice.provider) else "offline"


def to_wav(pcm: bytes, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def validate(voice_id: str, text: str | None) -> tuple[catalog.Voice, str]:
    voice = catalog.get_voice(voice_id)
    if voice is None:
        raise PreviewError(f"unknown voice {voice_id!r}", 404)
    text = (text if text is not None else DEFAULT_TEXT).strip()
    if not text:
        raise PreviewError("text must not be empty", 400)
    if len(text) > MAX_CHARS:
        raise PreviewError(f"text is {len(text)} characters; previews take at most {MAX_CHARS}", 400)
    return voice, text


async def _synthesise(voice: catalog.Voice, text: str) -> tuple[bytes, str]:
    tts = build_tts_for(voice.provider, voice.id)
    try:
        pcm = await asyncio.wait_for(tts.synthesize(text, PCM_16K), 30)
    except (TimeoutError, ProviderError, OSError) as exc:
        raise PreviewError(f"{tts.name} could not synthesise the preview: {exc or type(exc).__name__}", 502) from None
    finally:
        await tts.aclose()
    if not pcm:
        raise PreviewError(f"{tts.name} returned no audio", 502)
    return to_wav(pcm), tts.name


async def get_preview(voice_id: str, text: str | None) -> Preview:
    voice, text = validate(voice_id, text)
    key = cache_key(voice, text)
    store = cache()
    data = await asyncio.to_thread(store.get, key)
    if data is not None:
        return Preview(data, key, engine_for(voice), True)
    fut = _inflight.get(key)
    if fut is not None:  # someone is already synthesising this exact preview
        wav, engine = await asyncio.shield(fut)
        return Preview(wav, key, engine, True)
    fut = asyncio.get_running_loop().create_future()
    _inflight[key] = fut
    try:
        wav, engine = await _synthesise(voice, text)
        await asyncio.to_thread(store.put, key, wav)
        fut.set_result((wav, engine))
        return Preview(wav, key, engine, False)
    except BaseException as exc:
        fut.set_exception(exc)
        fut.exception()  # mark retrieved: waiters re-raise it, nobody else must log it
        raise
    finally:
        _inflight.pop(key, None)
