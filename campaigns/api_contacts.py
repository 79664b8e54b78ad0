"""/api/v1/campaigns/{id}/contacts (import: text/csv or JSON) and /api/v1/dnc (do-not-call)."""

from __future__ import annotations

from django.http import JsonResponse

from aioptions import inputs
from aioptions.http import api_view, json_error, parse_json_object, read_json
from aioptions.inputs import InputError

from . import contacts
from .models import Contact, DoNotCall


def _rows(request) -> list[tuple[int, object]]:
    ctype = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if ctype in ("text/csv", "application/csv"):
        try:
            text = request.body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError("CSV must be UTF-8", field="contacts") from None
        if "\x00" in text:
            raise InputError("CSV must not contain NUL bytes", field="contacts")
        return contacts.parse_csv(text)
    data = read_json(request)
    if isinstance(data, dict):
        inputs.only_keys(data, {"contacts", "default_region"})
        data = data.get("contacts")
    if not isinstance(data, list):
        raise InputError("send a JSON list of contacts (or {\"contacts\": [...]}) or text/csv", field="contacts")
    return [(i + 1, row) for i, row in enumerate(data)]


@api_view(methods=("GET", "POST"))
def campaign_contacts(request, campaign_id: int):
    cid = inputs.pk(campaign_id, "campaign_id")
    if request.method == "GET":
        rows = Contact.objects.filter(campaign_id=cid).order_by("id")[:1000]
        return JsonResponse([contacts.contact_dict(c) for c in rows], safe=False)
    region = request.GET.get("region", "")
    if region and (len(region) != 2 or not region.isalpha()):
        return json_error("region must be a two-letter country code", field="region")
    try:
        result = contacts.import_contacts(cid, _rows(request), default_region=region)
    except contacts.CampaignNotFound as exc:
        return json_error(str(exc), 404)
    return JsonResponse(result, status=201 if result["imported"] else 200)


@api_view(methods=("GET", "POST", "DELETE"))
def dnc(request):
    if request.method == "GET":
        return JsonResponse([{"phone": d.phone, "reason": d.reason} for d in DoNotCall.objects.order_by("phone")],
                            safe=False)
    data = parse_json_object(request)
    inputs.only_keys(data, {"phone", "reason"})
    if request.method == "DELETE":
        removed = contacts.remove_dnc(inputs.name(data.get("phone"), "phone", max_len=32))
        return JsonResponse({"status": "ok", "removed": removed})
    entry = contacts.add_dnc(data.get("phone"), inputs.text(data.get("reason", ""), "reason", max_len=200))
    return JsonResponse({"status": "ok", "phone": entry.phone}, status=201)
