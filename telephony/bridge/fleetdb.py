"""The node table as the fleet's shared state (sync ORM; call through sync_to_async off the loop).

Each bridge's row is what Kamailio's dispatcher reads (view ``kam_dispatcher``): address, capacity
(``max_calls`` -> maxload), draining (-> flags 9, out of rotation) and liveness (a heartbeat
younger than SIP_NODE_TIMEOUT_S). ``live_calls`` is written with every heartbeat so the status API
shows the fleet's load without asking any bridge. Crash recovery (finalising a dead node's calls
exactly once) stays in ``telephony.services``.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from telephony.models import BridgeNode


def register(*, name: str, host: str, sip_port: int, pid: int, advertised: str = "", hostname: str = "",
             max_calls: int = 100) -> int:
    node = BridgeNode.objects.create(name=name[:128], host=host[:255], sip_port=sip_port, pid=pid,
                                     advertised=(advertised or "")[:64], hostname=hostname[:128],
                                     max_calls=max(0, int(max_calls)), heartbeat_at=timezone.now())
    return node.pk


def heartbeat(node_id: int, live_calls: int) -> bool | None:
    """Prove the node alive and publish its load. Returns whether the row asks it to drain (the
    drain API sets that), or None when the row is gone or marked stopped (judged dead)."""
    updated = BridgeNode.objects.filter(pk=node_id, stopped_at__isnull=True).update(
        heartbeat_at=timezone.now(), live_calls=max(0, int(live_calls)))
    if not updated:
        return None
    return bool(BridgeNode.objects.filter(pk=node_id).values_list("draining", flat=True).first())


def set_draining(node_id: int, live_calls: int | None = None) -> None:
    """The bridge itself started draining (SIGTERM): the dispatcher view shows it inactive at once."""
    fields: dict = {"draining": True}
    if live_calls is not None:
        fields["live_calls"] = max(0, int(live_calls))
    BridgeNode.objects.filter(pk=node_id).update(**fields)


def request_drain(node_id: int) -> BridgeNode | None:
    """Ask a running node to drain (it notices at its next heartbeat). None if no such live node."""
    if not BridgeNode.objects.filter(pk=node_id, stopped_at__isnull=True).update(draining=True):
        return None
    return BridgeNode.objects.get(pk=node_id)


def node_state(node: BridgeNode, *, now=None, timeout_s: float | None = None) -> str:
    """running | draining | stopped | dead (heartbeat older than the node timeout)."""
    now = now or timezone.now()
    timeout_s = settings.SIP_NODE_TIMEOUT_S if timeout_s is None else timeout_s
    if node.stopped_at is not None:
        return "stopped"
    if node.heartbeat_at < now - timedelta(seconds=timeout_s):
        return "dead"
    return "draining" if node.draining else "running"


def describe(node: BridgeNode, *, now=None) -> dict:
    now = now or timezone.now()
    return {"id": node.pk, "name": node.name, "state": node_state(node, now=now), "host": node.host,
            "sip_port": node.sip_port, "advertised": node.advertised, "hostname": node.hostname,
            "pid": node.pid, "max_calls": node.max_calls, "calls": node.live_calls,
            "load": round(node.live_calls / node.max_calls, 3) if node.max_calls else None,
            "draining": node.draining, "started_at": node.started_at.isoformat(),
            "last_heartbeat": node.heartbeat_at.isoformat(),
            "heartbeat_age_s": round((now - node.heartbeat_at).total_seconds(), 1),
            "stopped_at": node.stopped_at.isoformat() if node.stopped_at else None}


def fleet(*, limit: int = 200, now=None) -> list[dict]:
    """Every node worth showing: not stopped, or stopped within the last hour (newest first)."""
    now = now or timezone.now()
    recent = now - timedelta(hours=1)
    rows = BridgeNode.objects.filter(stopped_at__isnull=True) | BridgeNode.objects.filter(stopped_at__gte=recent)
    return [describe(n, now=now) for n in rows.order_by("-started_at")[:limit]]
