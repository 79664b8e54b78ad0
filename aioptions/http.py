"""JSON API plumbing shared by every /api/v1 endpoint: body limits, parsing, errors, access control.

Errors are always ``{"error": "...", "field": ...}`` with a 4xx status (400 bad value, 401/403
auth, 404, 405, 413 body too large, 415 not JSON): never a 500 and never an HTML page. The value
rules live in ``aioptions.inputs`` so the WebSocket and the services apply the same ones.

Access: any method other than GET/HEAD/OPTIONS is a write. Writes need a staff user, either by
``Authorization: Bearer <token>`` (``python manage.py create_api_token <user>``; not cookie-based,
so no CSRF) or by session — and then CSRF is checked whatever the content type, because a
cross-origin ``text/plain`` form post carries the session cookie too. Catalog/config reads need
staff as well, unless ``API_LOOPBACK_READS`` is on and the request really comes from loopback
(not through a proxy on the same box, which would make every client look local).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from aioptions.logsafe import clip, redact

from .inputs import InputError, PayloadTooLarge, UnsupportedMediaType, max_body_bytes, parse_json
from .models import ApiToken

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Headers a reverse proxy adds: a request carrying them did not originate on this box.
_FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP", "HTTP_X_FORWARDED_HOST")

BadRequest = InputError  # the name older views import


def json_error(message: str, status: int = 400, field: str | None = None) -> JsonResponse:
    """The one error shape. Messages are redacted: a provider error must not echo a key."""
    return JsonResponse({"error": redact(str(message)), "field": field}, status=status)


def error_response(exc: InputError) -> JsonResponse:
    return json_error(str(exc), exc.status, exc.field)


def _content_type(request: HttpRequest) -> str:
    return request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()


def read_json(request: HttpRequest) -> Any:
    """The request body as JSON, under the input layer's bounds (size, depth, numbers, strings)."""
    body = request.body  # already bounded by api_view
    if not body.strip():
        raise InputError("request body must be a JSON object")
    ctype = _content_type(request)
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise UnsupportedMediaType(f"send Content-Type: application/json (got {clip(ctype or 'none', 60)})")
    return parse_json(body)


def parse_json_object(request: HttpRequest) -> dict:
    data = read_json(request)
    if not isinstance(data, dict):
        raise InputError("request body must be a JSON object")
    return data


def _check_body(request: HttpRequest) -> None:
    """413 before anything reads a body it should not hold (CSRF reads form bodies)."""
    limit = max_body_bytes()
    raw = request.META.get("CONTENT_LENGTH") or ""
    if raw.strip():
        if not raw.strip().isdigit() or len(raw.strip()) > 18:
            raise InputError("invalid Content-Length")
        if int(raw) > limit:
            raise PayloadTooLarge(f"body is {int(raw)} bytes; the limit is {limit}")
    try:
        size = len(request.body)
    except RequestDataTooBig:
        raise PayloadTooLarge(f"body is larger than the limit of {limit} bytes") from None
    if size > limit:
        raise PayloadTooLarge(f"body is {size} bytes; the limit is {limit}")


def direct_loopback(request: HttpRequest) -> bool:
    """From a loopback address and not relayed by a proxy (a proxy on the same box makes every
    client look local, so any forwarding header disqualifies). The one check behind every
    loopback door: API reads here, /metrics in telephony.metrics."""
    if any(request.META.get(h) for h in _FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def loopback_read_allowed(request: HttpRequest) -> bool:
    """Only with API_LOOPBACK_READS on, from a loopback address, and not relayed by a proxy."""
    return bool(getattr(settings, "API_LOOPBACK_READS", False)) and direct_loopback(request)


def _token_user(request: HttpRequest):
    """(user or None, error or None): a present but wrong token is an error, not anonymous."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None, None
    scheme, _, raw = header.partition(" ")
    raw = raw.strip()
    if scheme.lower() not in ("bearer", "token") or not raw or len(raw) > 256:
        return None, json_error("unsupported Authorization header (use: Bearer <token>)", 401)
    tok = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash(raw)).first()
    if tok is None or not tok.user.is_active:
        return None, json_error("invalid or revoked API token", 401)
    ApiToken.objects.filter(pk=tok.pk).update(last_used_at=timezone.now())
    return tok.user, None


def _csrf_failure(request: HttpRequest) -> str | None:
    mw = CsrfViewMiddleware(lambda r: None)
    mw.process_request(request)
    resp = mw.process_view(request, None, (), {})
    return None if resp is None else "CSRF check failed (send the X-CSRFToken header or use a token)"


def _authorize(request: HttpRequest, methods: tuple[str, ...], open_on_loopback: bool):
    """(user, None) when allowed, else (None, error response). Sync: it may touch the ORM."""
    if request.method not in methods:
        resp = json_error(f"method {clip(request.method, 20)} not allowed", 405)
        resp["Allow"] = ", ".join(methods)
        return None, resp
    try:
        _check_body(request)
    except InputError as exc:
        return None, error_response(exc)
    write = request.method not in SAFE_METHODS
    user, error = _token_user(request)
    if error is not None:
        return None, error
    if user is None and request.user.is_authenticated:
        if write:
            failure = _csrf_failure(request)
            if failure:
                return None, json_error(failure, 403)
        user = request.user
    if user is not None and not user.is_staff:
        return None, json_error("staff access required", 403)
    if user is None and not (open_on_loopback and not write and loopback_read_allowed(request)):
        return None, json_error("authentication required (staff session or Bearer token)", 401)
    return user, None


def api_view(*, methods: tuple[str, ...], open_on_loopback: bool = False) -> Callable:
    """Wrap a view (sync or async): method, body size, auth (token, or staff session + CSRF on
    writes), then the view with every InputError (and services.ValidationError) turned into JSON.

    The view receives ``request.api_user`` (a staff user, or None for an allowed loopback read).
    Anything else a view raises is a bug: Django's handler500 (``talky.errors``) answers JSON.
    """

    def deco(view):
        if asyncio.iscoroutinefunction(view):
            @csrf_exempt  # checked in _authorize for session writes; tokens are not cookies
            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args, **kwargs):
                user, error = await sync_to_async(_authorize)(request, methods, open_on_loopback)
                if error is not None:
                    return error
                request.api_user = user
                try:
                    return await view(request, *args, **kwargs)
                except InputError as exc:
                    return error_response(exc)

            return async_wrapper

        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            user, error = _authorize(request, methods, open_on_loopback)
            if error is not None:
                return error
            request.api_user = user
            try:
                return view(request, *args, **kwargs)
            except InputError as exc:
                return error_response(exc)

        return wrapper

    return deco
