"""Outbound HTTP for tools and webhooks, behind the SSRF guard (campaigns.netguard).

Each request: the URL is checked (scheme, host allowlist, literal IPs); the host is resolved off
the event loop (``loop.getaddrinfo`` runs in the default executor); *every* address must be
allowed; the connection goes to the checked address itself (the URL is rewritten to the IP, with
the real ``Host`` header and, for HTTPS, the real name for SNI and certificate checks), so a
second DNS answer cannot move it (no rebinding). Redirects are not followed (a 3xx is an error:
following one would skip the checks). The body read is bounded (``ACTIONS_MAX_RESPONSE_BYTES``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass

import httpx
from django.conf import settings

from campaigns import netguard

_TLS: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    """One TLS context per process: building one costs ~15 ms of CPU on the loop."""
    global _TLS
    if _TLS is None:
        _TLS = ssl.create_default_context()
    return _TLS


@dataclass
class HttpResult:
    ok: bool
    status: int | None = None
    body: bytes = b""
    error: str = ""  # safe to show and to give the model: no secrets, no headers
    truncated: bool = False
    latency_ms: float = 0.0


async def resolve_checked(host: str, port: int) -> str:
    """The address to connect to, or Blocked. All answers are checked, not just the first: a
    name that resolves to a public and a private address is refused."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        infos = [(None, None, None, None, (host.strip("[]"), port))]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), 5)
        except (OSError, TimeoutError) as exc:
            raise netguard.Blocked(f"cannot resolve {host} ({type(exc).__name__})") from None
    addrs = list(dict.fromkeys(info[4][0] for info in infos))
    if not addrs:
        raise netguard.Blocked(f"{host} has no address")
    bad = [a for a in addrs if not netguard.address_allowed(a)]
    if bad:
        raise netguard.Blocked(f"{host} resolves to {bad[0]}, a private/loopback/link-local address "
                               "(not in ACTIONS_ALLOWED_NETS)")
    return addrs[0]


async def send(method: str, url: str, body: bytes, headers: dict[str, str], timeout_s: float,
               max_bytes: int | None = None) -> HttpResult:
    """One guarded request; never raises for network or policy problems (they are results)."""
    started = time.monotonic()
    limit = max_bytes or settings.ACTIONS_MAX_RESPONSE_BYTES

    def done(**kw) -> HttpResult:
        return HttpResult(latency_ms=round((time.monotonic() - started) * 1000, 1), **kw)

    try:
        scheme, host, port, target = netguard.check_url(url)
        ip = await resolve_checked(host, port)
    except netguard.Blocked as exc:
        return done(ok=False, error=f"blocked: {exc}")
    except Exception as exc:  # noqa: BLE001 - InputError from a malformed URL
        return done(ok=False, error=f"blocked: {exc}")
    literal = f"[{ip}]" if ":" in ip else ip
    pinned = f"{scheme}://{literal}:{port}{target}"
    default_port = 443 if scheme == "https" else 80
    host_header = host if port == default_port else f"{host}:{port}"
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    all_headers = {**headers, "Host": host_header, "Content-Type": "application/json",
                   "User-Agent": "TalkyAI/1 (+actions)", "Accept-Encoding": "identity"}
    try:
        async with httpx.AsyncClient(verify=_tls(), follow_redirects=False, trust_env=False,
                                     timeout=httpx.Timeout(timeout_s)) as client:
            req = client.build_request(method, pinned, content=body, headers=all_headers, extensions=extensions)
            resp = await asyncio.wait_for(client.send(req, stream=True), timeout_s)
            try:
                chunks, size, truncated = [], 0, False
                async for chunk in resp.aiter_raw():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        truncated = True
                        break
                data = b"".join(chunks)[:limit]
            finally:
                await resp.aclose()
    except (TimeoutError, httpx.TimeoutException):
        return done(ok=False, error=f"timed out after {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return done(ok=False, error=f"request failed ({type(exc).__name__})")
    if 300 <= resp.status_code < 400:
        return done(ok=False, status=resp.status_code, error=f"HTTP {resp.status_code}: redirect not followed")
    if resp.status_code >= 400:
        return done(ok=False, status=resp.status_code, body=data, truncated=truncated,
                    error=f"HTTP {resp.status_code}")
    return done(ok=True, status=resp.status_code, body=data, truncated=truncated)
