"""The SSRF guard's rules (pure: no DNS, no sockets): may a tool or webhook URL be requested, and
may a resolved address be connected to?

Settings:
- ``ACTIONS_URL_ALLOWED_HOSTS``: host names (exact, or ``*.example.com``) tool and webhook URLs
  may name; ``["*"]`` (the default) = any host whose addresses are public.
- ``ACTIONS_ALLOWED_NETS``: CIDRs that are reachable although private/loopback/link-local
  (e.g. ``["10.1.2.0/24"]`` for an internal CRM, ``["127.0.0.1/32"]`` in tests). Empty by default:
  the bridge host, its LAN and the cloud metadata service (169.254.169.254) are unreachable.

The resolving and the pinned connection live in ``telephony.actions.httpclient``: the address
checked here is the address connected to, so a DNS answer that changes (rebinding) cannot move a
request onto a private address after the check.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings

from aioptions.inputs import InputError


class Blocked(ValueError):
    """The URL or address is not allowed; the message is safe to show (and to give the model)."""


def _nets() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for raw in getattr(settings, "ACTIONS_ALLOWED_NETS", []) or []:
        try:
            out.append(ipaddress.ip_network(str(raw).strip(), strict=False))
        except ValueError:
            continue
    return out


def parse_url(url: str, field: str = "url") -> tuple[str, str, int, str]:
    """(scheme, host, port, path?query) of an http(s) URL without credentials; InputError if not."""
    if not isinstance(url, str) or not url or len(url) > 500 or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise InputError(f"{field} must be an http(s) URL without spaces", field=field)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"{field} must start with http:// or https:// and name a host", field=field)
    if parts.username or parts.password:
        raise InputError(f"{field}: no user:password@ in the URL (use a header)", field=field)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InputError(f"{field}: bad port", field=field) from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname.lower(), port, target


def host_allowed(host: str) -> bool:
    for pattern in getattr(settings, "ACTIONS_URL_ALLOWED_HOSTS", ["*"]) or []:
        pattern = str(pattern).lower().strip()
        if pattern == "*" or pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


def address_allowed(ip: str) -> bool:
    """Public unicast, or inside ``ACTIONS_ALLOWED_NETS``. Loopback, private, link-local, CGNAT,
    multicast, reserved and unspecified addresses are refused otherwise (IPv4-mapped IPv6 too)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if any(addr in net for net in _nets()):
        return True
    return addr.is_global and not (addr.is_multicast or addr.is_reserved or addr.is_unspecified)


def check_url(url: str, field: str = "url") -> tuple[str, str, int, str]:
    """The checks that need no DNS (run when a tool or webhook is saved, and again before each
    request): scheme, no credentials, host on the allowlist, a literal IP must be allowed."""
    scheme, host, port, target = parse_url(url, field)
    if not host_allowed(host):
        raise Blocked(f"{field}: host {host} is not in ACTIONS_URL_ALLOWED_HOSTS")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return scheme, host, port, target
    if not address_allowed(host.strip("[]")):
        raise Blocked(f"{field}: {host} is a private/loopback/link-local address (not in ACTIONS_ALLOWED_NETS)")
    return scheme, host, port, target
