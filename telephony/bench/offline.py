"""The offline engines, measured: Whisper WER/RTF per decoding setting on a phone-band test set, the
Piper voice's first audio, and mouth-to-ear of whole offline calls at 1 and 10 at once.

Test set: SENTENCES spoken by espeak-ng and by Piper (joe), 8 kHz, G.711 mu-law round trip, each
clean and with white noise at ~15 dB SNR (64 clips). Calls: in-process FakeCalls (20 ms paced, no
SIP) with every stage offline (no keys): Silero VAD + Smart Turn + Whisper, the campaign responder,
Piper. Mouth-to-ear = caller's last voiced frame -> first reply RTP packet (the Turn waterfall).

    python -m telephony.bench.offline [--calls 1,10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import time

import numpy as np

from . import pct, write

SENTENCES = [
    "What are your opening hours on Saturday?",
    "I would like to book an appointment for Tuesday.",
    "Can I move my appointment to Thursday morning?",
    "Yes, that time works for me.",
    "No, I need to cancel it.",
    "Where is the clinic?",
    "How much does a check up cost?",
    "Is there parking near the building?",
    "Can I speak to a real person please?",
    "My name is Maria Lopez.",
    "I will be about ten minutes late.",
    "Do you open on Sunday?",
    "Please call me back tomorrow afternoon.",
    "That is all, thank you, goodbye.",
    "Could you repeat that please?",
    "I have a toothache since yesterday.",
]
PROMPT = (
    "Campaign: Acme Dental reminders\n"
    "You are a friendly receptionist for Acme Dental on a phone call. Confirm or reschedule the "
    "caller's appointment (Tuesday at 3 pm).\n"
    "Our opening hours are Monday to Friday from 8 am to 6 pm, and Saturday from 9 am to 1 pm. "
    "We are closed on Sundays. The clinic is at 12 Harbour Street, next to the post office. "
    "A check-up costs 60 dollars. Parking is free behind the building."
)
GREETING = "Hi, this is Acme Dental. How can I help?"
SETTINGS = {  # name -> (transcribe kwargs, prompt: None | "vocabulary" | "greeting")
    "beam1": ({"beam_size": 1}, None),
    "beam1+vocabulary": ({"beam_size": 1}, "vocabulary"),
    "beam1+greeting": ({"beam_size": 1}, "greeting"),
    "beam5": ({"beam_size": 5}, None),
}
_NUM = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
        "eight": "8", "nine": "9", "ten": "10", "checkup": "check up", "check-up": "check up"}


def normalise(text: str) -> list[str]:
    text = text.lower().replace("a.m.", "am").replace("p.m.", "pm").replace("-", " ")
    words = re.findall(r"[a-z0-9']+", text)
    return " ".join(_NUM.get(w, w) for w in words).split()


def wer(ref: str, hyp: str) -> tuple[int, int]:
    """(edit distance in words, reference length)."""
    r, h = normalise(ref), normalise(hyp)
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


# --- the phone-band test set -------------------------------------------------------------------

async def _voice_clips(tts, texts: list[str]) -> list[bytes]:
    from aioptions.providers.base import MULAW_8K

    return [await tts.synthesize(t, MULAW_8K) for t in texts]


def _noisy(mulaw: bytes, snr_db: float, rng) -> bytes:
    from aioptions.codecs import g711

    pcm = g711.ulaw_decode(mulaw).astype(np.float64)
    power = np.mean(pcm[np.abs(pcm) > 200] ** 2) if np.any(np.abs(pcm) > 200) else 1e6
    noise = rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(pcm))
    return g711.ulaw_encode(np.clip(pcm + noise, -32768, 32767).astype(np.int16))


async def phone_band_set(texts: list[str]) -> list[dict]:
    """Clips of every text in each voice, clean and noisy, as mu-law bytes (the G.711 round trip)."""
    from aioptions.providers.offline_piper import PiperTTS, piper_available, pool
    from aioptions.providers.offline_tts import OfflineTTS

    voices = [("espeak", OfflineTTS("bench"))]
    if piper_available():
        voices.append(("piper", PiperTTS("bench")))
    rng = np.random.default_rng(14)
    clips = []
    for name, tts in voices:
        for text, audio in zip(texts, await _voice_clips(tts, texts), strict=True):
            clips.append({"voice": name, "noise": False, "text": text, "audio": audio})
            clips.append({"voice": name, "noise": True, "text": text, "audio": _noisy(audio, 15.0, rng)})
    await pool().close()
    return clips


def measure_wer(clips: list[dict], settings: dict) -> dict:
    from aioptions.codecs import g711
    from aioptions.codecs.resample import Resampler
    from aioptions.providers.offline_stt import load_model, transcribe
    from aioptions.providers.offline_vocab import whisper_prompt

    load_model()
    prompts = {None: None, "vocabulary": whisper_prompt(f"{PROMPT}\n{GREETING}"), "greeting": GREETING}
    out = {}
    for name, (kwargs, use_prompt) in settings.items():
        errs = words = 0
        decode_s = audio_s = 0.0
        by: dict[str, list[int]] = {}
        examples = []
        for c in clips:
            up = Resampler(8000, 16000)
            pcm = g711.ulaw_decode(c["audio"])
            x = np.concatenate([up.process(pcm), up.flush()]).astype(np.int16)
            t = time.perf_counter()
            hyp, _ = transcribe(x, 0.0, prompts[use_prompt], **kwargs)
            decode_s += time.perf_counter() - t
            audio_s += len(pcm) / 8000
            e, n = wer(c["text"], hyp)
            errs, words = errs + e, words + n
            key = f"{c['voice']}/{'noisy' if c['noise'] else 'clean'}"
            by.setdefault(key, [0, 0])
            by[key][0] += e
            by[key][1] += n
            if e and len(examples) < 6:
                examples.append({"ref": c["text"], "hyp": hyp, "set": key})
        out[name] = {"wer": round(errs / max(words, 1), 4), "rtf": round(decode_s / audio_s, 3),
                     "by_set": {k: round(v[0] / max(v[1], 1), 4) for k, v in by.items()}, "errors": examples}
        print(f"  {name:14s} WER {out[name]['wer'] * 100:5.1f} %  RTF {out[name]['rtf']:.3f}  "
              + "  ".join(f"{k} {v * 100:.1f}%" for k, v in out[name]["by_set"].items()), flush=True)
    return out


async def piper_first_audio(texts: list[str]) -> dict:
    from aioptions.providers.base import MULAW_8K
    from aioptions.providers.offline_piper import PiperTTS, piper_available, pool

    if not piper_available():
        return {}
    tts = PiperTTS("bench")
    await tts.connect()
    firsts = []
    for text in texts:
        u = await tts.utterance(MULAW_8K)
        t = time.perf_counter()
        for w in text.split(" "):
            await u.push(w + " ")
        await u.finish()
        async for _ in u.audio():
            firsts.append((time.perf_counter() - t) * 1000)
            break
        await u.cancel()
    await pool().close()
    return {"n": len(firsts), "p50_ms": round(pct(firsts, 50), 1), "p95_ms": round(pct(firsts, 95), 1)}


# --- whole offline calls ------------------------------------------------------------------------

def _django(var_dir: str) -> None:
    os.environ["TALKY_VAR_DIR"] = var_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "talky.settings")
    for k in ("DATABASE_URL", "REDIS_URL", "DEEPGRAM_API_KEY", "GROQ_API_KEY", "OPENAI_API_KEY",
              "CARTESIA_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS"):
        os.environ.pop(k, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


async def calls_round(n: int, question: bytes, spread_s: float) -> dict:
    """``n`` offline calls started ``spread_s / n`` apart (min 0.3 s); each caller asks after the
    greeting, so with a small spread every question ends at almost the same moment (the worst case
    for a per-utterance recogniser) and with a larger one turns overlap as on a real line."""
    import psutil
    from asgiref.sync import sync_to_async

    from aioptions.providers.offline_piper import pool
    from campaigns.models import Campaign
    from telephony.media.memcall import SILENCE, FakeCall
    from telephony.models import Call
    from telephony.pipeline.agent import VoicePipelineAgent

    camp = await sync_to_async(Campaign.objects.filter(extension="914").first)()
    if camp is None:
        camp = await sync_to_async(Campaign.objects.create)(name="bench", extension="914", system_prompt=PROMPT,
                                                           greeting=GREETING)
    inbound = SILENCE * 250 + question + SILENCE * 150
    proc = psutil.Process()

    def cpu() -> float:
        t = proc.cpu_times()
        return t.user + t.system + sum(c.cpu_times().user + c.cpu_times().system
                                       for c in proc.children(recursive=True))

    cpu0, t0 = cpu(), time.monotonic()
    agents, calls, tasks = [], [], []
    for _ in range(n):
        row = await sync_to_async(Call.objects.create)(sip_call_id="bench-offline", campaign=camp, codec="PCMU")
        call = FakeCall(inbound=inbound, record_id=row.pk, campaign_id=camp.pk, max_seconds=30)
        agent = VoicePipelineAgent(call)
        agents.append(agent)
        calls.append(call)
        tasks.append(asyncio.create_task(agent.run(call)))
        await asyncio.sleep(max(0.3, spread_s / n))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(a.state.turns for a in agents):
        await asyncio.sleep(0.2)
    for c in calls:
        c._end("bye")
    await asyncio.gather(*tasks, return_exceptions=True)
    cpu_s = cpu() - cpu0
    wall = time.monotonic() - t0
    await pool().close()
    turns = [t for a in agents for t in a.state.turns[:1]]
    m2e = [t["mouth_to_ear_ms"] for t in turns if t.get("mouth_to_ear_ms") is not None]
    answered = sum(1 for t in turns if "9 am to 1 pm" in (t.get("agent_text") or ""))
    res = {"calls": n, "spread_s": spread_s, "turns": len(turns), "answered": answered,
           "mouth_to_ear_p50_ms": pct(m2e, 50), "mouth_to_ear_p95_ms": pct(m2e, 95),
           "eot_received_p50_ms": pct([t["eot_received_ms"] for t in turns if t.get("eot_received_ms")], 50),
           "tts_first_audio_p50_ms": pct([t["tts_first_audio_ms"] for t in turns if t.get("tts_first_audio_ms")], 50),
           "cpu_per_call_pct": round(100 * cpu_s / wall / n, 1),
           "transcripts": sorted({t["user_text"] for t in turns})[:5]}
    print(f"  {n:3d} calls, questions over {spread_s:4.1f} s: mouth-to-ear p50 {res['mouth_to_ear_p50_ms']} ms "
          f"p95 {res['mouth_to_ear_p95_ms']} ms "
          f"(EndOfTurn p50 {res['eot_received_p50_ms']} ms, first TTS audio p50 {res['tts_first_audio_p50_ms']} ms); "
          f"answered {answered}/{len(turns)}; CPU/call {res['cpu_per_call_pct']} %", flush=True)
    return res


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", default="1,10")
    p.add_argument("--quick", action="store_true", help="half the sentences, two settings")
    p.add_argument("--calls-only", action="store_true", help="skip the WER and voice measurements")
    p.add_argument("--spread", default="0,10", help="seconds over which the callers' questions are spread")
    args = p.parse_args()
    _django(tempfile.mkdtemp(prefix="offline-bench-"))
    texts = SENTENCES[:8] if args.quick else SENTENCES
    settings = {k: SETTINGS[k] for k in (["beam1", "beam1+vocabulary"] if args.quick else SETTINGS)}

    async def run() -> dict:
        from aioptions.providers.base import MULAW_8K
        from aioptions.providers.offline_piper import PiperTTS, pool

        result: dict = {"machine_cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}
        if not args.calls_only:
            clips = await phone_band_set(texts)
            print(f"WER on {len(clips)} phone-band clips ({len(texts)} sentences x voices x clean/noisy):",
                  flush=True)
            result["wer"] = await asyncio.to_thread(measure_wer, clips, settings)
            result["piper_first_audio"] = await piper_first_audio(texts)
            print(f"Piper first audio: {result['piper_first_audio']}", flush=True)
        question = await PiperTTS("bench").synthesize("What are your opening hours on Saturday?", MULAW_8K)
        await pool().close()
        print("Offline calls (question answered from the campaign prompt):", flush=True)
        result["calls"] = []
        for n in args.calls.split(","):
            for spread in ([0.0] if int(n) == 1 else [float(x) for x in args.spread.split(",")]):
                result["calls"].append(await calls_round(int(n), question, spread))
        return result

    result = asyncio.run(run())
    print("written to", write("offline-calls" if args.calls_only else "offline", result))


if __name__ == "__main__":
    main()
