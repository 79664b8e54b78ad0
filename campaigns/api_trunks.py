"""/api/v1/trunks : list, create, read, change, delete SIP trunks (staff; the password is write-only)."""

from __future__ import annotations

from django.http import JsonResponse

from aioptions import inputs
from aioptions.http import api_view, json_error, parse_json_object

from . import trunks
from .models import Trunk


@api_view(methods=("GET", "POST"))
def trunk_list(request):
    if request.method == "GET":
        return JsonResponse([trunks.trunk_dict(t) for t in Trunk.objects.order_by("name")], safe=False)
    t = trunks.create_trunk(parse_json_object(request))
    return JsonResponse(trunks.trunk_dict(t), status=201)


@api_view(methods=("GET", "PATCH", "DELETE"))
def trunk_detail(request, trunk_id: int):
    tid = inputs.pk(trunk_id, "trunk_id")
    try:
        if request.method == "GET":
            t = Trunk.objects.filter(pk=tid).first()
            if t is None:
                raise trunks.TrunkNotFound(f"trunk {tid} does not exist")
            return JsonResponse(trunks.trunk_dict(t))
        if request.method == "DELETE":
            trunks.delete_trunk(tid)
            return JsonResponse({"status": "ok", "deleted": tid})
        return JsonResponse(trunks.trunk_dict(trunks.update_trunk(tid, parse_json_object(request))))
    except trunks.TrunkNotFound as exc:
        return json_error(str(exc), 404)
