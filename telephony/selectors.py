"""Reads for the bridge: SIP accounts (digest auth), live bridge nodes, calls left open by dead ones."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from .models import BridgeNode, Call, SipAccount


def sip_accounts_ha1() -> dict[str, str]:
    """username -> HA1 of the accounts that may log in (disabled ones are left out: they fail auth)."""
    return dict(SipAccount.objects.filter(active=True).values_list("username", "ha1"))


def sip_accounts_version() -> tuple:
    """A cheap fingerprint of the account table (one aggregate query): it changes when an account is
    created, changed (``updated_at``), disabled or deleted, so a bridge reloads only then."""
    agg = SipAccount.objects.aggregate(n=Count("id"), changed=Max("updated_at"), top=Max("id"))
    return agg["n"], agg["changed"], agg["top"]


def sip_accounts_snapshot() -> tuple[int, dict[str, str]]:
    """(number of accounts including disabled ones, username -> HA1 of the active ones)."""
    return SipAccount.objects.count(), sip_accounts_ha1()


def _dead_after(timeout_s: float, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=timeout_s)


def live_nodes(timeout_s: float, now: datetime | None = None) -> QuerySet[BridgeNode]:
    """Bridges running now: not stopped, heartbeat within ``timeout_s`` (the dispatcher list)."""
    return BridgeNode.objects.filter(stopped_at__isnull=True, heartbeat_at__gte=_dead_after(timeout_s, now))


def unstopped_nodes(*, exclude_node: int | None = None) -> QuerySet[BridgeNode]:
    """Nodes not marked stopped (alive or died without saying so): the fleet, a handful of rows."""
    qs = BridgeNode.objects.filter(stopped_at__isnull=True)
    return qs.exclude(pk=exclude_node) if exclude_node is not None else qs


def orphaned_calls(timeout_s: float, *, exclude_node: int | None = None,
                   now: datetime | None = None) -> QuerySet[Call]:
    """Open Call rows no live bridge owns: owned by no node, by a stopped node, or by one whose
    heartbeat is older than ``timeout_s``. ``exclude_node`` (the caller's own node) is never
    included, whatever its heartbeat says."""
    dead = (Q(bridge_node__isnull=True) | Q(bridge_node__stopped_at__isnull=False)
            | Q(bridge_node__heartbeat_at__lt=_dead_after(timeout_s, now)))
    qs = Call.objects.filter(dead, ended_at__isnull=True)
    if exclude_node is not None:
        qs = qs.exclude(bridge_node_id=exclude_node)
    return qs
