"""/api/v1/sip/* : start, stop and inspect a bridge inside the web process (staff only).

Query values go through the shared input layer (``aioptions.inputs``): the host is an IP literal
or a host name (it is handed to ``bind()``), ports and limits are range-checked integers.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from aioptions import inputs
from aioptions.http import api_view, json_error
from telephony.agents import AGENTS
from telephony.bridge import fleetdb, inprocess


def _int(request: HttpRequest, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not raw.strip().lstrip("+-").isascii() or not raw.strip().lstrip("+-").isdigit():
        raise inputs.InputError(f"{name} must be an integer", field=name)
    return inputs.number(raw, name, lo, hi, integer=True)


@api_view(methods=("POST",))
async def start(request):
    port = _int(request, "port", settings.SIP_PORT, 1, 65535)
    max_calls = _int(request, "max_calls", 100, 1, 1000)
    agent = inputs.name(request.GET.get("agent", "pipeline"), "agent", max_len=32)
    if agent not in AGENTS:
        return json_error(f"unknown agent {inputs.show(agent)} (known: {', '.join(sorted(AGENTS))})", field="agent")
    host = inputs.host(request.GET.get("host", settings.SIP_HOST), "host")
    lo, hi = (int(x) for x in settings.SIP_RTP_PORTS.split("-"))
    try:
        result = await inprocess.start(host=host, port=port, rtp_ports=(lo, hi), agent=agent, max_calls=max_calls)
    except inprocess.BridgeError as exc:
        return json_error(str(exc), 409)
    return JsonResponse(result)


@api_view(methods=("POST",))
async def stop(request):
    try:
        return JsonResponse(await inprocess.stop())
    except inprocess.BridgeError as exc:
        return json_error(str(exc), 409)


@api_view(methods=("GET",), open_on_loopback=True)
def status(request):
    """This box's bridge (as before) plus ``nodes``: every bridge of the fleet sharing the database."""
    return JsonResponse({**inprocess.status(), "nodes": fleetdb.fleet()})


@api_view(methods=("POST",))
def drain(request, node_id: int):
    """Ask one bridge to drain: it answers OPTIONS/new INVITEs with 503 from its next heartbeat
    (<= 2 s), lets its calls finish (its --drain-timeout), then exits."""
    node = fleetdb.request_drain(node_id) if node_id < 2**63 else None  # beyond bigint: no such row
    if node is None:
        return json_error(f"no running bridge node {node_id}", 404, field="node_id")
    return JsonResponse({"status": "draining", "node": fleetdb.describe(node)}, status=202)
