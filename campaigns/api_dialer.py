"""POST /api/v1/campaigns/{id}/start|pause|stop and GET /api/v1/campaigns/{id}/progress."""

from __future__ import annotations

from django.http import JsonResponse
from django.utils import timezone

from aioptions import inputs
from aioptions.http import api_view, json_error

from . import dialer


@api_view(methods=("POST",))
def campaign_action(request, campaign_id: int, action: str):
    try:
        return JsonResponse(dialer.set_state(inputs.pk(campaign_id, "campaign_id"), action))
    except dialer.CampaignNotFound as exc:
        return json_error(str(exc), 404)


@api_view(methods=("GET",))
def campaign_progress(request, campaign_id: int):
    try:
        data = dialer.progress(inputs.pk(campaign_id, "campaign_id"), now=timezone.now())
    except dialer.CampaignNotFound as exc:
        return json_error(str(exc), 404)
    return JsonResponse(data, json_dumps_params={"default": str})
