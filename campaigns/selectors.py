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
