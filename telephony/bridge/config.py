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
