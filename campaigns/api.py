"""/api/v1/campaigns : list campaigns and assign a campaign's voice (thin views)."""

from __future__ import annotations

from django.http import JsonResponse

from aioptions import inputs
from aioptions.http import api_view, json_error, parse_json_object

from . import services
from .selectors import list_campaigns


@api_view(methods=("GET",), open_on_loopback=True)
def campaigns(request):
    return JsonResponse([services.campaign_dict(c) for c in list_campaigns()], safe=False)


@api_view(methods=("POST",))
def campaign_voice(request, campaign_id: int):
    """``{"voice_id": "en-US-Chirp3-HD-Leda", "provider": "google"}``; both empty = global voice."""
    data = parse_json_object(request)
    inputs.only_keys(data, {"voice_id", "provider"})
    for key in ("voice_id", "provider"):
        if key not in data:
            return json_error("voice_id and provider are required", field=key)
    try:
        result = services.set_campaign_voice(campaign_id=campaign_id, provider=data["provider"],
                                             voice_id=data["voice_id"], user=request.api_user,
                                             source="api")
    except services.CampaignNotFound as exc:
        return json_error(str(exc), 404)
    return JsonResponse({"status": "ok", **result})
