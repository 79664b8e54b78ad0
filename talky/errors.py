"""JSON error pages under /api/ (an API client must never get an HTML page), HTML elsewhere."""

from django.http import JsonResponse
from django.views import defaults


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"error": f"not found: {request.path}"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "internal error"}, status=500)
    return defaults.server_error(request)
