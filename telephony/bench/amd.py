"""Answering-machine detection accuracy on synthesised greetings (espeak-ng's en-us voice at 160
words/min; machines every other one with a 1 kHz beep), through the same 20 ms G.711 round trip a
call has. One synthetic voice: this measures the classifier's rules, not real-world accuracy.

    python -m telephony.bench.amd
Prints per-sample verdicts, the confusion matrix and accuracy; writes var/bench/amd.json.
"""

from __future__ import annotations

import asyncio
import tempfile
import wave
from pathlib import Path

import numpy as np

from aioptions.codecs import g711
from telephony.agents.greeting import synthesize_wav
from telephony.media.amd import Amd, BeepOrSilence

from . import write

HUMAN = ["Hello?", "Yes?", "Hi.", "Hello, yes?", "Speaking.", "Who is this?", "Hello. Ana here.", "Yeah?",
         "Good morning.", "Hello, Bob speaking."]
MACHINE = ["Hi, you have reached Ana. I can't take your call right now, please leave a message after the tone.",
           "The person you are calling is not available. Please leave a message.",
           "Hello, this is Bob. Leave your name and number and I will call you back.",
           "You have reached the voicemail of five five five, zero one two three.",
           "Thanks for calling Acme Dental. Our office is closed. Please leave a message after the beep.",
           "Hey, it's Sam. Can't talk now. Leave a message.",
           "Please leave your message after the tone. When you are finished, hang up.",
           "This is Maria. Sorry I missed you. Leave a message and I will get back to you.",
           "", ""]  # silence: a machine that plays nothing (Asterisk: initial silence)


def frames(pcm: np.ndarray, codec: str = "PCMU"):
    g = g711.encode(codec, pcm.astype(np.int16))
    for i in range(0, len(g) - 159, 160):
        yield g711.decode(codec, g[i:i + 160])


async def sample(text: str, beep: bool, tmp: Path) -> np.ndarray:
    if text:
        wav = await synthesize_wav(text, tmp)
        with wave.open(str(wav), "rb") as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    else:
        pcm = np.zeros(0)
    tail = [np.zeros(int(0.3 * 8000))]
    if beep:
        t = np.arange(int(0.5 * 8000)) / 8000
        tail += [8000 * np.sin(2 * np.pi * 1000 * t), np.zeros(8000)]
    return np.concatenate([np.zeros(int(0.4 * 8000)), pcm, *tail, np.zeros(4 * 8000)])


def classify(pcm: np.ndarray) -> tuple[str, str, int]:
    amd = Amd()
    for i, f in enumerate(frames(pcm)):
        if amd.feed(f):
            return amd.verdict, amd.reason, (i + 1) * 20
    return "notsure", "end of audio", len(pcm) // 8


async def main() -> None:
    rows, ok = [], 0
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for truth, texts in (("human", HUMAN), ("machine", MACHINE)):
            for i, text in enumerate(texts):
                pcm = await sample(text, beep=truth == "machine" and i % 2 == 0, tmp=tmp)
                verdict, reason, at_ms = classify(pcm)
                got = "machine" if verdict == "machine" else "human"
                ok += got == truth
                rows.append({"truth": truth, "verdict": verdict, "reason": reason, "decided_at_ms": at_ms,
                             "text": text[:50]})
                print(f"{truth:8s} -> {verdict:8s} at {at_ms:5d} ms  ({reason})  {text[:50]!r}")
    n = len(rows)
    confusion = {f"{t}->{v}": sum(1 for r in rows if r["truth"] == t and ("machine" if r["verdict"] == "machine"
                                                                          else "human") == v)
                 for t in ("human", "machine") for v in ("human", "machine")}
    print(f"accuracy {ok}/{n} = {100 * ok / n:.0f} %  {confusion}")
    beep = BeepOrSilence()
    t = np.arange(int(0.5 * 8000)) / 8000
    probe = np.concatenate([np.zeros(1600), 8000 * np.sin(2 * np.pi * 1000 * t), np.zeros(1600)])
    at = next((i * 20 for i, f in enumerate(frames(probe)) if beep.feed(f)), None)
    print(f"beep end found at {at} ms (tone 200-700 ms)")
    print("written to", write("amd", {"accuracy": ok / n, "confusion": confusion, "samples": rows,
                                      "beep_end_ms": at}))


if __name__ == "__main__":
    asyncio.run(main())
