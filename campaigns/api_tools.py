"""/api/v1/campaigns/<id>/tools and /actions (staff; the aioptions.http input layer: JSON errors,
CSRF on session writes, tokens). Header values and the signing secret are never echoed, except
the new secret returned once by POST .../actions/rotate-secret."""

from __future__ import annotations

from django.http import JsonResponse

from aioptions import inputs
from aioptions.http import api_view, json_error, parse_json_object

from . import tools
from .models import CampaignTool


@api_view(methods=("GET", "POST"))
def tool_list(request, campaign_id: int):
    cid = inputs.pk(campaign_id, "campaign_id")
    try:
        if request.method == "GET":
            tools.actions_of(cid)  # 404 for an unknown campaign
            return JsonResponse([tools.tool_dict(t) for t in CampaignTool.objects.filter(campaign_id=cid)], safe=False)
        return JsonResponse(tools.tool_dict(tools.create_tool(cid, parse_json_object(request))), status=201)
    except tools.NotFound as exc:
        return json_error(str(exc), 404)


@api_view(methods=("GET", "PATCH", "DELETE"))
def tool_detail(request, campaign_id: int, tool_id: int):
    cid, tid = inputs.pk(campaign_id, "campaign_id"), inputs.pk(tool_id, "tool_id")
    try:
        if request.method == "GET":
            t = CampaignTool.objects.filter(pk=tid, campaign_id=cid).first()
            if t is None:
                raise tools.NotFound(f"tool {tid} does not exist")
            return JsonResponse(tools.tool_dict(t))
        if request.method == "DELETE":
            if not tools.delete_tool(cid, tid):
                raise tools.NotFound(f"tool {tid} does not exist")
            return JsonResponse({"status": "ok", "deleted": tid})
        return JsonResponse(tools.tool_dict(tools.update_tool(cid, tid, parse_json_object(request))))
    except tools.NotFound as exc:
        return json_error(str(exc), 404)


@api_view(methods=("GET", "PATCH"))
def actions(request, campaign_id: int):
    cid = inputs.pk(campaign_id, "campaign_id")
    try:
        if request.method == "GET":
            return JsonResponse(tools.actions_dict(tools.actions_of(cid)))
        return JsonResponse(tools.actions_dict(tools.update_actions(cid, parse_json_object(request))))
    except tools.NotFound as exc:
        return json_error(str(exc), 404)


@api_view(methods=("POST",))
def rotate_secret(request, campaign_id: int):
    cid = inputs.pk(campaign_id, "campaign_id")
    try:
        return JsonResponse({"signing_secret": tools.rotate_secret(cid)})
    except tools.NotFound as exc:
        return json_error(str(exc), 404)
