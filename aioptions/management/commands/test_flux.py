"""python manage.py test_flux: a one-shot check that the Deepgram Flux key, URL and audio path work.

Streams a WAV (default: a bundled utterance) as 80 ms frames, in real time unless ``--fast``, prints
events as they arrive, then a one-line verdict. Every failure is one clear line on stderr and a
non-zero exit, never a traceback:
2 no key, 3 key refused (401/403), 4 unreachable (refused, DNS, timeout), 5 server error or no turn,
6 bad input (WAV, sample rate, URL), 1 anything unexpected, 130 interrupted.
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
FLUX_RATES = (8000, 16000, 24000, 44100, 48000)
EXIT = {"auth": 3, "connection": 4, "bad_request": 6}


def load_audio(path: Path, encoding: str, rate: int) -> tuple[bytes, float]:
    """Read a 16-bit PCM WAV and convert it to ``encoding`` at ``rate`` (first channel only)."""
    from aioptions.codecs import g711
    from aioptions.codecs.resample import resample

    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError("the WAV must be 16-bit PCM")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        if w.getnchannels() > 1:
            pcm = pcm.reshape(-1, w.getnchannels())[:, 0]
        src_rate = w.getframerate()
    if not len(pcm):
        raise ValueError("the WAV holds no audio")
    if src_rate != rate:
        pcm = resample(pcm, src_rate, rate)
    data = g711.ulaw_encode(pcm) if encoding == "mulaw" else np.asarray(pcm, dtype="<i2").tobytes()
    return data, len(pcm) / rate


def describe(exc: STTError, url: str) -> str:
    """One line naming the cause; the key is never printed."""
    if exc.kind == "auth":
        return f"the key was refused by {url} (HTTP {exc.status}): check DEEPGRAM_API_KEY"
    if exc.kind == "connection":
        return f"Deepgram is unreachable: {exc}"
    if exc.kind == "bad_request":
        extra = " (is Flux enabled for this project?)" if exc.status == 400 else ""
        return f"Deepgram rejected the request: {exc}{extra}"
    if exc.kind == "rate_limit":
        return f"Deepgram is rate limiting this key: {exc}"
    return f"Deepgram server error: {exc}"


class Command(BaseCommand):
    help = "Check the Deepgram Flux connection: stream a WAV, print turn events, give a verdict."

    def add_arguments(self, parser):
        parser.add_argument(
            "--wav", type=Path, default=BUNDLED, help="16-bit PCM WAV (default: bundled utterance)"
        )
        parser.add_argument("--encoding", choices=["mulaw", "linear16"], default="mulaw")
        parser.add_argument("--sample-rate", type=int, default=8000, help=f"one of {FLUX_RATES}")
        parser.add_argument("--url", default=None, help="override DEEPGRAM_URL")
        pace = parser.add_mutually_exclusive_group()
        pace.add_argument(
            "--realtime", dest="fast", action="store_false", help="stream at real time (default)"
        )
        pace.add_argument("--fast", dest="fast", action="store_true", help="send audio as fast as possible")
        parser.set_defaults(fast=False)
        parser.add_argument(
            "--timeout", type=float, default=15.0, help="seconds to wait for EndOfTurn after the audio"
        )

    def fail(self, code: int, line: str) -> None:
        self.stderr.write(f"FAIL: {line}")
        sys.exit(code)

    def handle(self, *args, **o):
        key = settings.DEEPGRAM_API_KEY
        url = o["url"] or settings.DEEPGRAM_URL
        if not key:
            self.fail(
                2, "DEEPGRAM_API_KEY is not set (export it, or put it in the environment of this process)"
            )
        if o["sample_rate"] not in FLUX_RATES:
            self.fail(6, f"--sample-rate {o['sample_rate']} is not one Flux accepts {FLUX_RATES}")
        try:
            audio, duration = load_audio(o["wav"], o["encoding"], o["sample_rate"])
        except (OSError, ValueError, EOFError, wave.Error) as exc:
            self.fail(6, f"cannot read {o['wav']}: {exc}")
        fmt = AudioFormat(o["encoding"], o["sample_rate"])
        try:
            verdict = asyncio.run(self._run(key, url, fmt, audio, duration, o["fast"], o["timeout"]))
        except STTError as exc:
            self.fail(EXIT.get(exc.kind, 5), describe(exc, url))
        except KeyboardInterrupt:
            self.fail(130, "interrupted")
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback
            self.fail(1, f"unexpected {type(exc).__name__}: {exc}")
        if verdict is None:
            self.fail(
                5,
                f"connected to {url}, but no EndOfTurn arrived within {o['timeout']:.0f} s of the audio end",
            )
        self.stdout.write(self.style.SUCCESS(f"OK: Flux works at {url}: {verdict}"))

    async def _run(
        self, key: str, url: str, fmt: AudioFormat, audio: bytes, duration: float, fast: bool, timeout: float
    ) -> str | None:
        from aioptions.providers.flux import FluxSTT

        stt = FluxSTT(api_key=key, url=url, max_reconnects=0, max_errors=0)  # one-shot: report, don't recover
        t0 = time.monotonic()
        session = await stt.open(fmt)
        self.stdout.write(
            f"Connected to {url} in {(time.monotonic() - t0) * 1000:.0f} ms "
            f"({fmt.encoding} {fmt.sample_rate} Hz, {duration:.2f} s of audio, "
            f"{'fast' if fast else 'real time'})"
        )
        step = fmt.bytes_per_second * 80 // 1000
        start_at: list[float] = []  # monotonic time audio position 0 was sent (real time only)
        done_at: list[float] = []

        async def feed() -> None:
            start_at.append(time.monotonic())
            for n, i in enumerate(range(0, len(audio), step)):
                await session.send(audio[i : i + step])
                if not fast:  # absolute deadlines: no drift over the file
                    await asyncio.sleep(max(0.0, start_at[0] + (n + 1) * 0.08 - time.monotonic()))
            done_at.append(time.monotonic())

        def latency(ev) -> str:
            parts = []
            if not fast and start_at:
                parts.append(
                    f"{(ev.received_at - start_at[0] - ev.speech_end) * 1000:.0f} ms after the speech "
                    f"ended at {ev.speech_end:.2f} s"
                )
            if done_at:
                parts.append(f"{(ev.received_at - done_at[0]) * 1000:.0f} ms after the audio ended")
            return "; ".join(parts)

        async def consume() -> str | None:
            last_text = ""
            async for ev in session.events():
                if ev.kind == "StartOfTurn":
                    self.stdout.write(
                        f"  StartOfTurn (turn {ev.turn_index}, audio {ev.audio_window_start:.2f} s)"
                    )
                elif ev.kind == "Update":
                    if ev.transcript and ev.transcript != last_text:
                        last_text = ev.transcript
                        self.stdout.write(f"  Update: {ev.transcript}")
                elif ev.kind in ("EagerEndOfTurn", "TurnResumed"):
                    self.stdout.write(f"  {ev.kind}: {ev.transcript}")
                elif ev.kind == "EndOfTurn":
                    lat = latency(ev)
                    self.stdout.write(
                        f"  EndOfTurn: {ev.transcript!r} (trigger {ev.trigger}{', ' + lat if lat else ''})"
                    )
                    return f"transcript {ev.transcript!r}" + (f", EndOfTurn {lat}" if lat else "")
            return None

        feeder = asyncio.create_task(feed())
        try:
            return await asyncio.wait_for(consume(), timeout + (duration if not fast else 0.0))
        except TimeoutError:
            return None
        finally:
            feeder.cancel()
            await session.close()
