"""The built-in tools: their definitions for the model and the effects that need the call.

``end_call`` and ``transfer_call`` do not act at once: the model's reply ("Goodbye" / "Putting you
through") is spoken first, then the agent hangs up or transfers (the runner records the request).
``send_dtmf`` plays in-band DTMF tones (works on any path: no RFC 4733 negotiation needed).
"""

from __future__ import annotations

import re

import numpy as np

from aioptions.codecs import g711

DTMF_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}
DIGITS = re.compile(r"[0-9A-D*#]{1,32}")
TRANSFER_MODES = ("blind", "warm")


def specs(enabled: list[str], targets: list[str]) -> list[dict]:
    """OpenAI function definitions of the enabled built-ins."""
    defs = {
        "end_call": ("End the call once your goodbye has been said. Use when the caller is done.",
                     {"reason": {"type": "string", "description": "why the call ends"}}, []),
        "transfer_call": ("Transfer the caller to a person or another number. Tell the caller first. "
                          "mode blind (default): hand the call over at once; warm: you call the target "
                          "first, brief them on the call, then join the caller (tell the caller to hold).",
                          {"target": {"type": "string", "description": "where to transfer",
                                      **({"enum": targets} if targets else {})},
                           "mode": {"type": "string", "enum": list(TRANSFER_MODES),
                                    "description": "blind or warm"}}, ["target"]),
        "add_to_do_not_call": ("Put the caller's number on the do-not-call list when they ask not to be "
                               "called again.", {"reason": {"type": "string"}}, []),
        "send_dtmf": ("Press keys on the phone keypad (for menus): digits 0-9, *, #.",
                      {"digits": {"type": "string", "description": "e.g. 1 or 123#"}}, ["digits"]),
    }
    out = []
    for name in enabled:
        if name in defs:
            desc, props, required = defs[name]
            out.append({"type": "function", "function": {
                "name": name, "description": desc,
                "parameters": {"type": "object", "properties": props, "required": required}}})
    return out


def dtmf_audio(digits: str, codec: str, tone_ms: int = 120, gap_ms: int = 80) -> bytes:
    """G.711 audio of the digits as dual tones (ITU-T Q.23 frequencies), ready for ``call.play``."""
    parts = []
    n, gap = 8 * tone_ms, np.zeros(8 * gap_ms)
    t = np.arange(n) / 8000.0
    for d in digits:
        lo, hi = DTMF_FREQS[d]
        parts += [(np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)) * 6000, gap]
    pcm = np.concatenate(parts).astype(np.int16)
    return g711.ulaw_encode(pcm) if codec == "PCMU" else g711.alaw_encode(pcm)


def caller_number(caller_uri: str) -> str:
    """The caller's number from ``sip:+15551234@host`` (or ``<sip:...>``), '' when it is not one."""
    m = re.search(r"sips?:(\+?[0-9]{6,15})@", caller_uri or "")
    return m.group(1) if m else ""
