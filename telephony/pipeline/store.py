"""The pipeline's only ORM access: resolve the call's config, write Turn rows and call summaries,
and push live updates to Channels groups. Always via sync_to_async at turn boundaries."""

from __future__ import annotations

import logging
import statistics

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from aioptions.stats import percentile
from telephony.metrics import prom

log = logging.getLogger(__name__)


def _resolve(campaign_id: int | None):
    from campaigns.models import Campaign
    from campaigns.selectors import effective_config_for

    campaign = Campaign.objects.filter(pk=campaign_id).first() if campaign_id else None
    return campaign, effective_config_for(campaign)


async def resolve_config(campaign_id: int | None):
    """(campaign, EffectiveConfig) — re-read from the DB at every turn, so a change on the options
    page reaches a live call in this process or in a separate bridge process alike."""
    return await sync_to_async(_resolve)(campaign_id)


def _save_turn(call_id: int, fields: dict) -> int:
    from telephony.models import Turn

    return Turn.objects.create(call_id=call_id, **fields).pk


def _summarise(call_id: int, llm_model: str, voice_id: str) -> dict:
    from telephony.models import Call, Turn

    totals = [t for t in Turn.objects.filter(call_id=call_id).values_list("mouth_to_ear_ms", flat=True)
              if t is not None]
    p50 = statistics.median(totals) if totals else None
    p95 = percentile(totals, 95)
    n = Turn.objects.filter(call_id=call_id).count()
    Call.objects.filter(pk=call_id).update(turns_count=n, mouth_to_ear_p50_ms=p50, mouth_to_ear_p95_ms=p95,
                                           llm_model=llm_model, voice_id=voice_id)
    return {"turns": n, "p50": p50, "p95": p95}


async def save_turn(call_id: int | None, fields: dict) -> None:
    prom.observe_turn(fields)  # per-stage latency histograms (/metrics): once per turn, a few µs
    if call_id is None:
        return
    try:
        await sync_to_async(_save_turn)(call_id, fields)
    except Exception:  # noqa: BLE001 - metrics must never break a call
        log.exception("could not store turn %s of call %s", fields.get("index"), call_id)
    await publish(call_id, {"kind": "turn", **fields})


async def summarise_call(call_id: int | None, llm_model: str, voice_id: str) -> dict | None:
    if call_id is None:
        return None
    try:
        return await sync_to_async(_summarise)(call_id, llm_model, voice_id)
    except Exception:  # noqa: BLE001
        log.exception("could not summarise call %s", call_id)
        return None


async def publish(call_id: int | None, payload: dict) -> None:
    """Push to the live call page (group call_<id>) and the dashboard (group calls)."""
    if call_id is None:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        message = {"type": "call.update", "call_id": call_id, "payload": payload}
        await layer.group_send(f"call_{call_id}", message)
        await layer.group_send("calls", message)
    except Exception:  # noqa: BLE001
        log.debug("channel layer unavailable for call %s", call_id)
