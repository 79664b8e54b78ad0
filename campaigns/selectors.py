"""Reads for campaigns: routing a dialed extension, and a campaign's effective AI config."""

from __future__ import annotations

from aioptions.config import EffectiveConfig
from aioptions.selectors import resolve_config

from .models import Campaign


def campaign_for_extension(extension: str) -> Campaign | None:
    """The active campaign with this extension, else the one whose DID (dialer settings) it is,
    else the active default campaign, else None."""
    found = Campaign.objects.filter(extension=extension, active=True).first()
    if found is None and extension:  # a trunk's inbound call: the dialled number (DID) picks the campaign
        did = "+" + extension.lstrip("+")
        found = Campaign.objects.filter(dialer__did__in=[did, did[1:]], active=True).first()
    if found is None:
        found = Campaign.objects.filter(is_default=True, active=True).first()
    return found


def effective_config_for(campaign: Campaign | None) -> EffectiveConfig:
    """Campaign voice/LLM when set, else the global AIConfig; offline where a key is missing."""
    if campaign is None:
        return resolve_config()
    voice = (campaign.voice_provider, campaign.voice_id) if campaign.voice_id else None
    llm = (campaign.llm_provider, campaign.llm_model) if campaign.llm_model else None
    return resolve_config(voice=voice, llm=llm)


def list_campaigns() -> list[Campaign]:
    return list(Campaign.objects.all())


def preview_text(campaign_id: int) -> str | None:
    """The text a voice preview speaks for this campaign; None when there is no such campaign."""
    camp = Campaign.objects.filter(pk=campaign_id).first()
    return None if camp is None else camp.effective_preview_text


def dialer_progress(campaign_id: int, *, now) -> dict | None:
    """The dialer's progress page: the numbers of ``GET /api/v1/campaigns/{id}/progress``
    (``dialer.progress``, one source for both) with the campaign, state labels and the next
    attempt times as datetimes. None if there is no such campaign."""
    import datetime as dt

    from . import dialer
    from .models import Contact

    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return None
    data = dialer.progress(campaign_id, now=now)
    labels = dict(Contact.State.choices)
    data["campaign_obj"] = campaign
    data["states"] = [(k, labels[k], n) for k, n in data["by_state"].items()]
    data["outcomes"] = sorted(data["by_outcome"].items(), key=lambda kv: (-kv[1], kv[0]))
    data["next"] = [{**n, "at": dt.datetime.fromisoformat(n["at"])} for n in data["next_attempts"]]
    data["now"] = now
    return data
