"""Network options of a bridge (settings + run_sip_bridge flags) turned into the values the gateway
takes: a validated advertised address and a ``SipPolicy``. Shared by the command (which turns a
ValueError into a CommandError) and the runner, so both accept exactly the same input."""

from __future__ import annotations

import ipaddress

from django.conf import settings

from telephony.sip.policy import SipPolicy, parse_networks

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_advertise(value: str | None) -> str | None:
    """The address SDP/Contact/Via carry: an IPv4/IPv6 literal, or None for "not set".

    A hostname is refused rather than resolved: resolving would mean DNS on the event loop (or a
    stale address fixed at start), and the address is what phones must send media to.
    """
    value = (value or "").strip()
    if not value:
        return None
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"--advertise must be an IP address (no hostnames: nothing is resolved), "
                         f"got {value[:80]!r}") from None
    if addr.is_unspecified or addr.is_multicast:
        raise ValueError(f"--advertise must be an address phones can reach, not {addr}")
    return str(addr)


def parse_proxies(value: str | list[str] | None) -> tuple:
    """--trusted-proxy: the SIP proxies (Kamailio) a fleet bridge takes signalling from, as networks.
    Raises ValueError naming the bad item."""
    try:
        return parse_networks(value)
    except ValueError as exc:
        raise ValueError(f"--trusted-proxy: {exc} (expected a comma list of IPs, e.g. 10.0.0.5,10.0.0.6)") from None


def build_policy(*, trusted: str | list[str] | None = None, hold_timeout_s: float | None = None,
                 proxies: tuple = ()) -> SipPolicy:
    """SipPolicy from the SIP_* settings, overridden by the command's flags (None = setting).
    ``proxies`` (parsed --trusted-proxy) are trusted too: one proxy carries every caller's traffic,
    so per-source limits would throttle the whole fleet. Raises ValueError naming the bad value."""
    hold = settings.SIP_HOLD_TIMEOUT_S if hold_timeout_s is None else float(hold_timeout_s)
    if not hold > 0:
        raise ValueError(f"--hold-timeout must be a positive number of seconds, got {hold_timeout_s!r}")
    try:
        nets = parse_networks(settings.SIP_TRUSTED_IPS if trusted is None else trusted)
    except ValueError as exc:
        raise ValueError(f"--trusted / SIP_TRUSTED_IPS: {exc} (expected a comma list of IPs or CIDRs, "
                         f"e.g. 10.0.0.0/8,192.0.2.7)") from None
    nets = nets + tuple(p for p in proxies if p not in nets)
    rate, burst = float(settings.SIP_INVITE_RATE), int(settings.SIP_INVITE_BURST)
    if rate <= 0 or burst < 1:
        raise ValueError("SIP_INVITE_RATE must be > 0 and SIP_INVITE_BURST >= 1")
    per_source, fails = int(settings.SIP_MAX_CALLS_PER_SOURCE), int(settings.SIP_AUTH_FAIL_LIMIT)
    if per_source < 1 or fails < 1:
        raise ValueError("SIP_MAX_CALLS_PER_SOURCE and SIP_AUTH_FAIL_LIMIT must be >= 1")
    lockout = float(settings.SIP_AUTH_LOCKOUT_S)
    if lockout < 0:
        raise ValueError("SIP_AUTH_LOCKOUT_S must be >= 0")
    return SipPolicy(invite_rate=rate, invite_burst=burst, max_calls_per_source=per_source,
                     auth_fail_limit=fails, auth_lockout_s=lockout, hold_timeout_s=hold, trusted=nets)


PROXY_SIP_PORT = 5060


def parse_outbound_proxy(value: str | None, proxies: tuple = ()) -> tuple[str, int] | None:
    """Where a fleet bridge sends calls to registered extensions: ``IP[:PORT]`` (--outbound-proxy),
    else the first --trusted-proxy when all are single addresses (port 5060), else None (the
    bridge's own registrar: the single-process default).

    Why through the proxy: behind Kamailio, phones register there (usrloc in PostgreSQL), never
    with a bridge, so only the proxy knows where ``alice`` is; it routes a bridge's INVITE by its
    Request-URI user without a challenge (bridges are trusted by source address). An IP literal
    only, like --advertise: nothing is resolved. Raises ValueError naming the bad value."""
    value = (value or "").strip()
    if not value:
        single = [n for n in proxies if n.num_addresses == 1]
        if len(single) != len(proxies) or not single:
            return None  # a network, or none: no one address to send to
        return str(single[0].network_address), PROXY_SIP_PORT
    host, port = value, PROXY_SIP_PORT
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            port = _port(rest.removeprefix(":"), value)
    elif value.count(":") == 1:
        host, _, p = value.partition(":")
        port = _port(p, value)
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"--outbound-proxy must be IP[:PORT] (no hostnames), got {value[:80]!r}") from None
    if addr.is_unspecified or addr.is_multicast:
        raise ValueError(f"--outbound-proxy must be a proxy's address, not {addr}")
    return str(addr), port


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"--outbound-proxy: bad port in {value[:80]!r}")
    return int(text)
