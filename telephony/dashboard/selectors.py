"""Reads for the latency dashboard. Percentiles are computed in Python over the last N turns, so
SQLite and PostgreSQL give the same numbers and the page stays fast."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from telephony.models import Call, Turn

STAGES = (("eot_received_ms", "End of turn"), ("llm_ttft_ms", "LLM first token"), ("tts_ttfb_ms", "TTS first audio"),
          ("first_rtp_ms", "First reply RTP"), ("mouth_to_ear_ms", "Mouth-to-ear"))
MAX_TURNS = 5000


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1)))))
    return ordered[k]


@dataclass
class Filters:
    campaign: int | None = None
    llm_model: str = ""
    voice_id: str = ""

    @classmethod
    def from_query(cls, q) -> Filters:
        raw = q.get("campaign", "")
        # ASCII digits only ("²".isdigit() is True) and within a database id's range
        campaign = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None
        return cls(campaign=campaign, llm_model=_printable(q.get("llm_model", "")),
                   voice_id=_printable(q.get("voice_id", "")))


def _printable(value: str, n: int = 128) -> str:
    """A filter value, or "" when it holds control characters (PostgreSQL refuses NUL)."""
    value = value[:n]
    return value if value.isprintable() else ""


def filtered_turns(f: Filters) -> QuerySet[Turn]:
    qs = Turn.objects.all()
    if f.campaign:
        qs = qs.filter(call__campaign_id=f.campaign)
    if f.llm_model:
        qs = qs.filter(llm_model=f.llm_model)
    if f.voice_id:
        qs = qs.filter(voice_id=f.voice_id)
    return qs


def stage_stats(f: Filters) -> list[dict]:
    rows = list(filtered_turns(f).order_by("-id").values(*(s for s, _ in STAGES))[:MAX_TURNS])
    out = []
    for field, label in STAGES:
        vals = [r[field] for r in rows if r[field] is not None]
        out.append({"field": field, "label": label, "n": len(vals), "p50": percentile(vals, 50),
                    "p95": percentile(vals, 95)})
    return out


def recent_calls(f: Filters, limit: int = 50) -> list[Call]:
    qs = Call.objects.select_related("campaign").order_by("-started_at")
    if f.campaign:
        qs = qs.filter(campaign_id=f.campaign)
    if f.llm_model:
        qs = qs.filter(turns__llm_model=f.llm_model).distinct()
    if f.voice_id:
        qs = qs.filter(turns__voice_id=f.voice_id).distinct()
    return list(qs[:limit])


def filter_choices() -> dict:
    from campaigns.models import Campaign

    return {
        "campaigns": list(Campaign.objects.values_list("pk", "name")),
        "llm_models": sorted(m for m in Turn.objects.values_list("llm_model", flat=True).distinct() if m),
        "voices": sorted(v for v in Turn.objects.values_list("voice_id", flat=True).distinct() if v),
    }


def call_detail(call_id: int) -> tuple[Call | None, list[Turn]]:
    call = Call.objects.select_related("campaign").filter(pk=call_id).first()
    return call, (list(call.turns.order_by("index")) if call else [])
