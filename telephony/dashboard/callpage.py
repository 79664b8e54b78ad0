"""Everything the call page shows about one call, read in one place (a selector): its turns with
their recording times and fault markers, the recording's two-lane waveform, and a latency bar per
turn. The view stays a thin renderer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.utils.safestring import SafeString, mark_safe

from telephony.models import Call, Turn

from . import svg, waveform


@dataclass
class TurnView:
    turn: Turn
    user_at: float | None = None  # seconds into the recording where the caller's line starts
    agent_at: float | None = None
    bar: SafeString = mark_safe("")
    fallbacks: list[str] = field(default_factory=list)  # provider faults handled (failover, offline, retries)
    clips: list[str] = field(default_factory=list)  # filler/apology said while waiting


def recording_path(call: Call) -> Path | None:
    """The call's WAV on disk, only inside MEDIA_ROOT (as the recording view serves it)."""
    if not call.recording:
        return None
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / call.recording.name).resolve()
    return path if root in path.parents and path.is_file() else None


def _markers(t: Turn) -> tuple[list[str], list[str]]:
    fallbacks, clips = [], []
    for note in t.errors or []:
        text = str(note)
        (clips if text.startswith("said ") else fallbacks).append(text)
    for stage, provider in (("llm", t.llm_provider), ("tts", t.tts_provider)):
        if provider == "offline" and not any(f.startswith(stage) for f in fallbacks):
            fallbacks.append(f"{stage}: offline engine")
    return fallbacks, clips


def call_page(call: Call, turns: list[Turn]) -> dict:
    rec = None
    path = recording_path(call)
    if path is not None:
        rec = waveform.analyse(path)
    times = waveform.align(turns, rec, call.started_at) if rec is not None else [{}] * len(turns)
    scale_ms = max([t.first_rtp_ms or 0 for t in turns] + [1000.0])
    views = []
    for t, at in zip(turns, times, strict=True):
        fallbacks, clips = _markers(t)
        views.append(TurnView(t, at.get("user_at"), at.get("agent_at"), mark_safe(svg.turn_bar(t, scale_ms)),
                              fallbacks, clips))
    greeting_at = rec.agent_runs[0][0] if rec is not None and rec.agent_runs else None
    return {
        "turn_views": views,
        "recording": rec,
        "waveform": mark_safe(svg.two_lanes(rec)) if rec is not None and rec.duration_s else "",
        "greeting_at": greeting_at,
        "greeting": call.campaign.greeting if call.campaign_id and call.campaign else "",
        "direction": getattr(call, "direction", ""),
        "outcome": getattr(call, "outcome", ""),
        "contact": getattr(call, "contact", None) if hasattr(call, "contact_id") else None,
        "fallback_turns": sum(1 for v in views if v.fallbacks),
    }
