"""What the AI options page, its WebSocket and the voice preview need from campaigns, without
importing campaigns: DESIGN.md's arrows point telephony -> campaigns -> aioptions, so campaigns plugs
its functions in when Django starts (``campaigns.apps.CampaignsConfig.ready``). Without campaigns
installed the page simply lists none and campaign actions answer "unknown campaign"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class CampaignNotFound(LookupError):
    """No campaign with that id (campaigns raises its own subclass)."""


def _no_campaign(*args: Any, **kwargs: Any) -> Any:
    raise CampaignNotFound("unknown campaign")


@dataclass
class CampaignHooks:
    list_campaigns: Callable[[], list] = list
    set_voice: Callable[..., dict] = _no_campaign  # (campaign_id=, provider=, voice_id=, user=, source=)
    preview_text: Callable[[int], str | None] = lambda campaign_id: None  # None: no such campaign


hooks = CampaignHooks()
