"""Reads for the latency dashboard. Percentiles are computed in Python over the last N turns, so
SQLite and PostgreSQL give the same numbers and the page stays fast."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import DurationField, ExpressionWrapper, F, Q, QuerySet
from django.db.models.functions import Coalesce

from aioptions.stats import percentile  # the one definition, shared with the benchmarks and call summaries
from telephony.bridge import fleetdb
from telephony.models import Call, Turn

STAGES = (("eot_received_ms", "End of turn"), ("llm_ttft_ms", "LLM first token"), ("tts_ttfb_ms", "TTS first audio"),
          ("first_rtp_ms", "First reply RTP"), ("mouth_to_ear_ms", "Mouth-to-ear"))
MAX_TURNS = 5000


def _call_fields() -> set[str]:
    """Call columns present in this schema (direction/outcome/contact arrive with outbound calls)."""
    return {f.name for f in Call._meta.get_fields()}


def _int(raw: str, hi: int = 10**9) -> int | None:
    raw = (raw or "").strip()
    # ASCII digits only ("²".isdigit() is True), bounded so the database never sees a huge number
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 and int(raw) <= hi else None


def _day(raw: str) -> date | None:
    try:
        return date.fromisoformat((raw or "").strip()[:10])
    except ValueError:
        return None


@dataclass
class Filters:
    campaign: int | None = None
    llm_model: str = ""
    voice_id: str = ""
    since: date | None = None  # started on or after this day
    until: date | None = None  # started on or before this day
    direction: str = ""
    outcome: str = ""  # an end reason or an outbound outcome
    min_s: int | None = None  # duration bounds (seconds)
    max_s: int | None = None
    min_p95_ms: int | None = None  # calls whose p95 mouth-to-ear is at least this
    q: str = ""  # caller, dialled number or transcript text

    @classmethod
    def from_query(cls, q) -> Filters:
        campaign = _int(q.get("campaign", ""), 2**63 - 1)
        return cls(campaign=campaign, llm_model=_printable(q.get("llm_model", "")),
                   voice_id=_printable(q.get("voice_id", "")), since=_day(q.get("since", "")),
                   until=_day(q.get("until", "")), direction=_printable(q.get("direction", ""), 16),
                   outcome=_printable(q.get("outcome", ""), 16), min_s=_int(q.get("min_s", "")),
                   max_s=_int(q.get("max_s", "")), min_p95_ms=_int(q.get("min_p95_ms", "")),
                   q=_printable(q.get("q", "").strip(), 100))

    @property
    def active(self) -> bool:
        return any(v not in (None, "") for v in vars(self).values())


def _printable(value: str, n: int = 128) -> str:
    """A filter value, or "" when it holds control characters (PostgreSQL refuses NUL)."""
    value = value[:n]
    return value if value.isprintable() else ""


def filtered_calls(f: Filters) -> QuerySet[Call]:
    """Calls matching every call-level filter (turn-level ones: ``llm_model``, ``voice_id``)."""
    fields = _call_fields()
    qs = Call.objects.all()
    if f.campaign:
        qs = qs.filter(campaign_id=f.campaign)
    if f.since:
        qs = qs.filter(started_at__date__gte=f.since)
    if f.until:
        qs = qs.filter(started_at__date__lte=f.until)
    if f.direction and "direction" in fields:
        qs = qs.filter(direction=f.direction)
    if f.outcome:
        match = Q(end_reason=f.outcome)
        if "outcome" in fields:
            match |= Q(outcome=f.outcome)
        qs = qs.filter(match)
    if f.min_s is not None or f.max_s is not None:
        qs = qs.annotate(duration=ExpressionWrapper(F("ended_at") - Coalesce("answered_at", "started_at"),
                                                    output_field=DurationField()))
        if f.min_s is not None:
            qs = qs.filter(duration__gte=timedelta(seconds=f.min_s))
        if f.max_s is not None:
            qs = qs.filter(duration__lte=timedelta(seconds=f.max_s))
    if f.min_p95_ms is not None:
        qs = qs.filter(mouth_to_ear_p95_ms__gte=f.min_p95_ms)
    if f.q:
        text = Q(caller_uri__icontains=f.q) | Q(dialed__icontains=f.q)
        hits = Turn.objects.filter(Q(user_text__icontains=f.q) | Q(agent_text__icontains=f.q)).values("call_id")
        qs = qs.filter(text | Q(pk__in=hits))
    if f.llm_model:
        qs = qs.filter(pk__in=Turn.objects.filter(llm_model=f.llm_model).values("call_id"))
    if f.voice_id:
        qs = qs.filter(pk__in=Turn.objects.filter(voice_id=f.voice_id).values("call_id"))
    return qs


def filtered_turns(f: Filters) -> QuerySet[Turn]:
    qs = Turn.objects.all()
    call_level = Filters(**{**vars(f), "llm_model": "", "voice_id": ""})
    if call_level.active:
        qs = qs.filter(call__in=filtered_calls(call_level))
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
    return list(filtered_calls(f).select_related("campaign").order_by("-started_at")[:limit])


def filter_choices() -> dict:
    from campaigns.models import Campaign

    return {
        "campaigns": list(Campaign.objects.values_list("pk", "name")),
        "llm_models": sorted(m for m in Turn.objects.values_list("llm_model", flat=True).distinct() if m),
        "voices": sorted(v for v in Turn.objects.values_list("voice_id", flat=True).distinct() if v),
        "directions": ["inbound", "outbound"] if "direction" in _call_fields() else [],
        "outcomes": _outcomes(),
    }


def _outcomes() -> list[tuple[str, str]]:
    """End reasons, plus outbound outcomes seen so far when the schema has them."""
    out = list(Call.EndReason.choices)
    if "outcome" in _call_fields():
        known = {k for k, _ in out}
        out += [(o, o.replace("_", " ")) for o in sorted(set(
            Call.objects.exclude(outcome="").order_by().values_list("outcome", flat=True))) if o not in known]
    return out


def call_detail(call_id: int) -> tuple[Call | None, list[Turn]]:
    """The call (with campaign and, when the schema has it, contact) and its turns in order."""
    call = Call.objects.select_related("campaign").filter(pk=call_id).first()
    return call, (list(call.turns.order_by("index")) if call else [])


# --- the bridge fleet (issue 17): one row per node for the dashboard's Bridges panel ------------
DASHBOARD_STATE = {"running": "live", "draining": "draining", "dead": "dead", "stopped": "stopped"}


def bridge_nodes(*, now=None) -> list[dict]:
    """Every bridge worth showing (not stopped, or stopped within the last hour; newest first) as
    the status API describes it, with the dashboard's state name (live / draining / dead: heartbeat
    older than SIP_NODE_TIMEOUT_S / stopped) and load in percent."""
    rows = []
    for node in fleetdb.fleet(now=now):
        node["state"] = DASHBOARD_STATE.get(node["state"], node["state"])
        node["load_pct"] = round(node["load"] * 100) if node["load"] is not None else None
        rows.append(node)
    return rows
