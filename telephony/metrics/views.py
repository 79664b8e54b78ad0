"""GET /metrics on the web process: Prometheus text format.

Who may read it: a direct loopback connection (a Prometheus or node agent on the same host; not a
request relayed by a proxy on the same box, which would make every client look local — any
forwarding header disqualifies it), or a staff user by session or ``Authorization: Bearer <token>``
(``manage.py create_api_token``), for a Prometheus elsewhere. ``METRICS_LOOPBACK = False`` turns the
loopback door off. The output holds counts and timings only: no keys, URLs, callers or campaigns.

The view is async so that, under the ASGI server, collection runs on the event loop that also runs
an in-process bridge's media (nothing to lock). A separate run_sip_bridge has its own endpoint
(``--metrics-port``, loopback only): the pipeline's turn histograms live in that process.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from aioptions.http import api_view, direct_loopback

from .prom import exposition
from .serve import CONTENT_TYPE


def metrics_loopback(request: HttpRequest) -> bool:
    """The loopback door, unless METRICS_LOOPBACK turned it off."""
    return bool(getattr(settings, "METRICS_LOOPBACK", True)) and direct_loopback(request)


async def _metrics(request: HttpRequest) -> HttpResponse:
    body = exposition()
    return HttpResponse(b"" if request.method == "HEAD" else body, content_type=CONTENT_TYPE)


_staff_metrics = api_view(methods=("GET", "HEAD"))(_metrics)


@csrf_exempt
async def metrics(request: HttpRequest) -> HttpResponse:
    if request.method in ("GET", "HEAD") and metrics_loopback(request):
        return await _metrics(request)
    return await _staff_metrics(request)
