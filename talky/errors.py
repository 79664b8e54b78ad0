"""JSON error pages under /api/ (an API client must never get an HTML page), HTML elsewhere.

Django answers some failures before any view runs (a malformed request, a body over
DATA_UPLOAD_MAX_MEMORY_SIZE, a CSRF refusal, a permission error, a crash): these handlers keep the
``{"error": ..., "field": ...}`` shape for them too, and never echo more than a clipped path.
"""

from django.http import JsonResponse
from django.views import csrf, defaults

from talky.logsafe import clip


def _api(request) -> bool:
    return request.path.startswith("/api/")


def _json(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message, "field": None}, status=status)


def bad_request(request, exception=None):
    if _api(request):
        return _json("bad request", 400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _api(request):
        return _json("permission denied", 403)
    return defaults.permission_denied(request, exception)


def csrf_failure(request, reason=""):
    if _api(request):
        return _json("CSRF check failed (send the X-CSRFToken header or use a token)", 403)
    return csrf.csrf_failure(request, reason)


def not_found(request, exception=None):
    if _api(request):
        return _json(f"not found: {clip(request.path, 100)}", 404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _api(request):
        return _json("internal error", 500)
    return defaults.server_error(request)
