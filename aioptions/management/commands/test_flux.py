"""python manage.py test_flux: a one-shot check that the Deepgram Flux key, URL and audio path work.

Streams a WAV (default: a bundled utterance) in real time as 80 ms frames, prints events as they
arrive, then a one-line verdict. Every failure is one clear line and a non-zero exit, never a
traceback: no key (2), refused/bad key (3), unreachable (4), server error or no turn (5).
"""

from __future__ import annotations

import asyncio
import sys
import time
import wave
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand

from aioptions.providers.base import AudioFormat, STTError

BUNDLED = Path(__file__).resolve().parents[2] / "assets" / "utterance_8k.wav"


def load_audio(path: Path, encoding: str, rate: int) -> tuple[bytes, float]:
    from telephony.codecs import g711
    from telephony.codecs.resample import resample

    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError("the WAV must be 16-bit PCM")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        if w.getnchannels() > 1:
            pcm = pcm.reshape(-1, w.getnchannels())[:, 0]
        src_rate = w.getframerate()
    if src_rate != rate:
        pcm = resample(pcm, src_rate, rate)
    data = g711.ulaw_encode(pcm) if encoding == "mulaw" else pcm.astype("<i2").tobytes()
    return data, len(pcm) / rate


class Command(BaseCommand):
    help = "Check the Deepgram Flux connection: stream a WAV, print turn events, give a verdict."

    def add_arguments(self, parser):
        parser.add_argument("--wav", type=Path, default=BUNDLED)
        parser.add_argument("--encoding", choices=["mulaw", "linear16"], default="mulaw")
        parser.add_argument("--sample-rate", type=int, default=8000)
        parser.add_argument("--url", default=None, help="override DEEPGRAM_URL")
        parser.add_argument("--fast", action="store_true", help="send audio as fast as possible, not real time")
        parser.add_argument("--timeout", type=float, default=15.0)

    def fail(self, code: int, line: str) -> None:
        self.stderr.write(f"FAIL: {line}")
        sys.exit(code)

    def handle(self, *args, **o):
        key = settings.DEEPGRAM_API_KEY
        url = o["url"] or settings.DEEPGRAM_URL
        if not key:
            self.fail(2, "DEEPGRAM_API_KEY is not set (export it, or put it in the environment of this process)")
        try:
            audio, duration = load_audio(o["wav"], o["encoding"], o["sample_rate"])
        except (OSError, ValueError, wave.Error) as exc:
            self.fail(6, f"cannot read {o['wav']}: {exc}")
        fmt = AudioFormat(o["encoding"], o["sample_rate"])
        try:
            verdict = asyncio.run(self._run(key, url, fmt, audio, duration, o["fast"], o["timeout"]))
        except STTError as exc:
            code = {"auth": 3, "connection": 4}.get(exc.kind, 5)
            what = {"auth": "the key was refused", "connection": "Deepgram is unreachable"}.get(exc.kind, "error")
            self.fail(code, f"{what}: {exc}")
        except KeyboardInterrupt:
            self.fail(130, "interrupted")
        if verdict is None:
            self.fail(5, f"connected to {url}, but no EndOfTurn arrived within {o['timeout']:.0f} s")
        self.stdout.write(self.style.SUCCESS(f"OK: Flux works at {url} ({verdict})"))

    async def _run(self, key, url, fmt, audio, duration, fast, timeout) -> str | None:
        from aioptions.providers.flux import FluxSTT

        stt = FluxSTT(api_key=key, url=url, max_reconnects=0)
        t0 = time.monotonic()
        session = await stt.open(fmt)
        self.stdout.write(f"Connected to {url} in {(time.monotonic() - t0) * 1000:.0f} ms "
                          f"({fmt.encoding} {fmt.sample_rate} Hz, {duration:.1f} s of audio)")
        step = fmt.bytes_per_second * 80 // 1000
        done_at: list[float] = []

        async def feed() -> None:
            for i in range(0, len(audio), step):
                await session.send(audio[i:i + step])
                if not fast:
                    await asyncio.sleep(0.08)
            done_at.append(time.monotonic())

        feeder = asyncio.create_task(feed())
        verdict = None
        last_text = ""

        async def consume() -> str | None:
            nonlocal last_text
            async for ev in session.events():
                if ev.kind == "StartOfTurn":
                    self.stdout.write(f"  StartOfTurn (turn {ev.turn_index}, audio {ev.audio_window_start:.2f} s)")
                elif ev.kind in ("Update", "EagerEndOfTurn", "TurnResumed") and ev.transcript != last_text:
                    last_text = ev.transcript
                    self.stdout.write(f"  {ev.kind}: {ev.transcript}")
                elif ev.kind == "EndOfTurn":
                    lat = ""
                    if done_at:
                        lat = f", {(ev.received_at - done_at[0]) * 1000:.0f} ms after the audio ended"
                    self.stdout.write(f"  EndOfTurn: {ev.transcript!r} (trigger {ev.trigger}{lat})")
                    return f"transcript {ev.transcript!r}"
            return None

        try:
            verdict = await asyncio.wait_for(consume(), timeout + duration)
        except TimeoutError:
            verdict = None
        finally:
            feeder.cancel()
            await session.close()
        return verdict
