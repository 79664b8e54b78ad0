"""Writes for telephony records, called by the bridge runner at call boundaries only."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.utils import timezone

from campaigns.selectors import campaign_for_extension

from .models import Call


def start_call(*, sip_call_id: str, caller_uri: str, dialed: str, codec: str, agent: str) -> dict:
    campaign = campaign_for_extension(dialed)
    call = Call.objects.create(sip_call_id=sip_call_id, caller_uri=caller_uri[:255], dialed=dialed[:64],
                               codec=codec, agent=agent, campaign=campaign)
    return {
        "record_id": call.pk,
        "campaign_id": campaign.pk if campaign else None,
        "campaign_name": campaign.name if campaign else "",
        "greeting": campaign.greeting if campaign else "",
        "system_prompt": campaign.system_prompt if campaign else "",
    }


def mark_answered(record_id: int) -> None:
    Call.objects.filter(pk=record_id).update(answered_at=timezone.now())


def finish_call(record_id: int, *, reason: str, stats: dict, recording: Path | None) -> int:
    fields = {
        "ended_at": timezone.now(), "end_reason": reason[:16],
        "packets_in": stats.get("packets_in", 0), "packets_out": stats.get("packets_out", 0),
        "packets_lost": stats.get("lost", 0), "packets_late": stats.get("late", 0),
        "jitter_ms": stats.get("jitter_ms", 0.0),
    }
    if recording is not None:
        try:
            fields["recording"] = str(Path(recording).relative_to(settings.MEDIA_ROOT))
        except ValueError:
            fields["recording"] = str(recording)
    return Call.objects.filter(pk=record_id).update(**fields)


def finish_open_calls(reason: str = "shutdown") -> int:
    """Calls left open by a bridge that died without finalising them (crash, kill -9)."""
    return Call.objects.filter(ended_at__isnull=True).update(ended_at=timezone.now(), end_reason=reason)
