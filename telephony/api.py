"""/api/v1/sip/* : start, stop and inspect a bridge inside the web process (staff only)."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse

from aioptions.http import api_view, json_error
from telephony.agents import AGENTS
from telephony.bridge import inprocess


def _int(request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.GET.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}")
    return value


@api_view(methods=("POST",), write=True)
async def start(request):
    try:
        port = _int(request, "port", settings.SIP_PORT, 1, 65535)
        max_calls = _int(request, "max_calls", 100, 1, 1000)
    except ValueError as exc:
        return json_error(str(exc))
    agent = request.GET.get("agent", "pipeline")
    if agent not in AGENTS:
        return json_error(f"unknown agent {agent!r} (known: {', '.join(sorted(AGENTS))})")
    host = request.GET.get("host", settings.SIP_HOST)
    lo, hi = (int(x) for x in settings.SIP_RTP_PORTS.split("-"))
    try:
        result = await inprocess.start(host=host, port=port, rtp_ports=(lo, hi), agent=agent, max_calls=max_calls)
    except inprocess.BridgeError as exc:
        return json_error(str(exc), 409)
    return JsonResponse(result)


@api_view(methods=("POST",), write=True)
async def stop(request):
    try:
        return JsonResponse(await inprocess.stop())
    except inprocess.BridgeError as exc:
        return json_error(str(exc), 409)


@api_view(methods=("GET",), open_on_loopback=True)
def status(request):
    return JsonResponse(inprocess.status())
