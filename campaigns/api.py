"""/api/v1/campaigns : list campaigns and assign a campaign's voice (thin views)."""

from __future__ import annotations

from django.http import JsonResponse

from aioptions.http import api_view, json_error, parse_json_object
from aioptions.services import ValidationError

from . import services
from .selectors import list_campaigns


@api_view(methods=("GET",), open_on_loopback=True)
def campaigns(request):
    return JsonResponse([services.campaign_dict(c) for c in list_campaigns()], safe=False)


@api_view(methods=("POST",), write=True)
def campaign_voice(request, campaign_id: int):
    """``{"voice_id": "en-US-Chirp3-HD-Leda", "provider": "google"}``; both empty = global voice."""
    data = parse_json_object(request)
    unknown = set(data) - {"voice_id", "provider"}
    if unknown:
        return json_error(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "voice_id" not in data or "provider" not in data:
        return json_error("voice_id and provider are required")
    try:
        result = services.set_campaign_voice(campaign_id=campaign_id, provider=data["provider"],
                                             voice_id=data["voice_id"], user=request.api_user,
                                             source="api")
    except services.CampaignNotFound as exc:
        return json_error(str(exc), 404)
    except ValidationError as exc:
        return json_error(str(exc), 400)
    return JsonResponse({"status": "ok", **result})
