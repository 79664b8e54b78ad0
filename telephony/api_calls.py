"""POST /api/v1/calls {"to": "+12015550123" | "sip:..." | "201", "campaign": 1}: place one call.

The bridge that places it is the one in this process (``/api/v1/sip/start``) if any, else the
running ``run_sip_bridge`` over its loopback control channel. The answer comes as soon as the
call is routed (202: allowlist, do-not-call and trunk caps passed; the INVITE is on its way), or
at once with 403 when it is refused — nothing was sent then — or 503 when no bridge runs.
"""

from __future__ import annotations

import asyncio

from django.http import JsonResponse

from aioptions import inputs
from aioptions.http import api_view, json_error, parse_json_object
from campaigns.outbound import Refused

from .bridge import inprocess
from .bridge.control import dial_via_bridge


async def _in_process(runner, to: str, campaign: int | None, ring: float) -> dict:
    accepted: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_accepted(plan) -> None:
        if not accepted.done():
            accepted.set_result({"route": plan.kind, "dest": plan.dest})

    task = asyncio.create_task(runner.outbound.place(to, campaign, ring_timeout_s=ring, on_accepted=on_accepted))
    await asyncio.wait([task, accepted], return_when=asyncio.FIRST_COMPLETED)
    if accepted.done():
        return {"accepted": accepted.result()}
    try:
        return {"result": task.result().__dict__}
    except Refused as exc:
        return {"refused": str(exc)}


@api_view(methods=("POST",))
async def place_call(request):
    data = parse_json_object(request)
    inputs.only_keys(data, {"to", "campaign", "ring_timeout_s"})
    to = inputs.name(data.get("to"), "to", max_len=256)
    campaign = inputs.pk(data["campaign"], "campaign") if data.get("campaign") is not None else None
    ring = inputs.number(data.get("ring_timeout_s", 30), "ring_timeout_s", 1, 300)
    runner = inprocess._runner
    try:
        if runner is not None:
            msg = await _in_process(runner, to, campaign, ring)
        else:
            msg = await dial_via_bridge(to, campaign, ring_timeout_s=ring, detach=True)
    except ConnectionError:
        return json_error("no SIP bridge is running (start run_sip_bridge or POST /api/v1/sip/start)", 503)
    if "refused" in msg:
        return json_error(f"refused: {msg['refused']}", 403, field="to")
    if "accepted" in msg:
        return JsonResponse({"status": "dialing", **msg["accepted"]}, status=202)
    return JsonResponse({"status": "done", **(msg.get("result") or {})})
