"""JSON API plumbing shared by every /api/v1 endpoint: body parsing, errors, and access control.

Errors are always ``{"error": "..."}`` with a 4xx status: never a 500 or an HTML page.
Writes need a staff user, by session (CSRF-checked) or ``Authorization: Bearer <token>``
(``python manage.py create_api_token <user>``). Catalog/config reads are open to loopback clients
only: they hold no secrets (keys are reported as present/absent) and ``curl localhost`` is how
operators and health checks look at a box; anyone else must be staff.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from .models import ApiToken


class BadRequest(ValueError):
    pass


def json_error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def parse_json_object(request: HttpRequest) -> dict:
    if not request.body:
        raise BadRequest("request body must be a JSON object")
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def _token_user(request: HttpRequest):
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() not in ("bearer", "token") or not raw.strip():
        return None
    tok = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash(raw.strip())).first()
    if tok is None or not tok.user.is_active:
        return None
    ApiToken.objects.filter(pk=tok.pk).update(last_used_at=timezone.now())
    return tok.user


def _is_loopback(request: HttpRequest) -> bool:
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def _csrf_failure(request: HttpRequest) -> str | None:
    mw = CsrfViewMiddleware(lambda r: None)
    mw.process_request(request)
    resp = mw.process_view(request, None, (), {})
    return None if resp is None else "CSRF check failed (send the X-CSRFToken header or use a token)"


def _authorize(request: HttpRequest, methods: tuple[str, ...], write: bool, open_on_loopback: bool):
    """(user, None) when allowed, else (None, error response). Sync: it may touch the ORM."""
    if request.method not in methods:
        resp = json_error(f"method {request.method} not allowed", 405)
        resp["Allow"] = ", ".join(methods)
        return None, resp
    user = _token_user(request)
    if user is None and request.user.is_authenticated:
        if write:
            failure = _csrf_failure(request)
            if failure:
                return None, json_error(failure, 403)
        user = request.user
    if user is not None and not user.is_staff:
        return None, json_error("staff access required", 403)
    if user is None and not (open_on_loopback and not write and _is_loopback(request)):
        return None, json_error("authentication required (staff session or Bearer token)", 401)
    return user, None


def api_view(*, methods: tuple[str, ...], write: bool = False, open_on_loopback: bool = False) -> Callable:
    """Wrap a view (sync or async): method check, auth (token or staff session), JSON errors.

    The view receives ``request.api_user`` (a staff user or None for open loopback reads).
    """

    def deco(view):
        if asyncio.iscoroutinefunction(view):
            @csrf_exempt
            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args, **kwargs):
                user, error = await sync_to_async(_authorize)(request, methods, write, open_on_loopback)
                if error is not None:
                    return error
                request.api_user = user
                try:
                    return await view(request, *args, **kwargs)
                except BadRequest as exc:
                    return json_error(str(exc), 400)

            return async_wrapper

        @csrf_exempt  # checked in _authorize for session auth; token auth is not cookie-based
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            user, error = _authorize(request, methods, write, open_on_loopback)
            if error is not None:
                return error
            request.api_user = user
            try:
                return view(request, *args, **kwargs)
            except BadRequest as exc:
                return json_error(str(exc), 400)

        return wrapper

    return deco
