"""Writes for browser calls: the Call row a browser call gets, like a phone call's (one row,
recording linked at the answer, finalised at the end through ``telephony.services.finish_call``)."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings

from campaigns.models import Campaign
from telephony import services as call_services
from telephony.models import Call


class NoSuchCampaign(LookupError):
    pass


def start_browser_call(*, username: str, campaign_id: int | None) -> dict:
    """Create the Call row (campaign = the one asked for, else the active default) and link the
    recording it will be written to. Returns what the transport and the page need."""
    if campaign_id is not None:
        campaign = Campaign.objects.filter(pk=campaign_id).first()
        if campaign is None:
            raise NoSuchCampaign(f"campaign {campaign_id} does not exist")
    else:
        campaign = Campaign.objects.filter(is_default=True, active=True).first()
    sip_call_id = f"browser-{secrets.token_hex(8)}"
    call = Call.objects.create(sip_call_id=sip_call_id, caller_uri=f"browser:{username}"[:255], dialed="browser",
                               codec="PCMU", agent="pipeline", campaign=campaign)
    path = Path(settings.MEDIA_ROOT) / "recordings" / f"browser-{call.pk}-{sip_call_id[8:]}.wav"
    call_services.mark_answered(call.pk, recording=path)
    return {"record_id": call.pk, "call_id": sip_call_id, "campaign_id": campaign.pk if campaign else None,
            "campaign_name": campaign.name if campaign else "", "greeting": campaign.greeting if campaign else "",
            "recording": path}


def finish_browser_call(record_id: int, *, reason: str, stats: dict, recording: Path | None) -> int:
    return call_services.finish_call(record_id, reason=reason, stats=stats, recording=recording)
