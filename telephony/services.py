"""Writes for telephony records, called by the bridge runner at call boundaries and from its
housekeeping task (node heartbeat), always in a worker thread, never on the packet path."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from campaigns.selectors import campaign_for_extension

from . import selectors
from .media.recording import repair_wav
from .models import BridgeNode, Call

log = logging.getLogger("telephony.bridge")


def _media_name(path: Path | str) -> str:
    """A recording path as the FileField stores it: relative to MEDIA_ROOT when inside it."""
    try:
        return str(Path(path).relative_to(settings.MEDIA_ROOT))
    except ValueError:
        return str(path)


def start_call(*, sip_call_id: str, caller_uri: str, dialed: str, codec: str, agent: str,
               bridge_node: int | None = None) -> dict:
    campaign = campaign_for_extension(dialed)
    call = Call.objects.create(sip_call_id=sip_call_id, caller_uri=caller_uri[:255], dialed=dialed[:64],
                               codec=codec, agent=agent, campaign=campaign, bridge_node_id=bridge_node)
    return {
        "record_id": call.pk,
        "campaign_id": campaign.pk if campaign else None,
        "campaign_name": campaign.name if campaign else "",
        "greeting": campaign.greeting if campaign else "",
        "system_prompt": campaign.system_prompt if campaign else "",
    }


def start_outbound_call(*, sip_call_id: str, caller_uri: str, dialed: str, codec: str, agent: str,
                        bridge_node: int | None = None, campaign_id: int | None = None,
                        contact_id: int | None = None, variables: dict | None = None) -> dict:
    """The Call row of a call we place (before the INVITE leaves), and what the agent is told:
    the campaign's greeting and prompt with the contact's variables and an outbound note."""
    from campaigns.models import Campaign, Contact
    from campaigns.outbound import call_context

    campaign = Campaign.objects.filter(pk=campaign_id).first() if campaign_id else None
    contact = Contact.objects.filter(pk=contact_id).first() if contact_id else None
    call = Call.objects.create(sip_call_id=sip_call_id, caller_uri=caller_uri[:255], dialed=dialed[:64],
                               codec=codec, agent=agent, campaign=campaign, bridge_node_id=bridge_node,
                               direction="outbound", contact=contact)
    values = {"name": contact.name, "phone": contact.phone, **contact.variables} if contact else {}
    values.update(variables or {})
    return {"record_id": call.pk, "campaign_id": campaign.pk if campaign else None, "contact_id": contact_id,
            **call_context(campaign.pk if campaign else None, values, to=dialed)}


def mark_answered(record_id: int, *, recording: Path | None = None) -> None:
    """The call is up. The recording is linked now, not only at the end, so a bridge that dies
    mid-call leaves a row whose recording the admin and dashboard can already play."""
    fields: dict = {"answered_at": timezone.now()}
    if recording is not None:
        fields["recording"] = _media_name(recording)
    Call.objects.filter(pk=record_id).update(**fields)


def finish_call(record_id: int, *, reason: str, stats: dict, recording: Path | None, outcome: str = "",
                sip_status: int | None = None) -> int:
    fields = {
        "ended_at": timezone.now(), "end_reason": reason[:16],
        "packets_in": stats.get("packets_in", 0), "packets_out": stats.get("packets_out", 0),
        "packets_lost": stats.get("lost", 0), "packets_late": stats.get("late", 0),
        "jitter_ms": stats.get("jitter_ms", 0.0),
    }
    if recording is not None:
        fields["recording"] = _media_name(recording)
    if outcome:  # outbound calls: how the attempt ended
        fields["outcome"] = outcome[:16]
    if sip_status:
        fields["sip_status"] = sip_status
    return Call.objects.filter(pk=record_id).update(**fields)


# --- bridge nodes ---------------------------------------------------------------------------
def register_node(*, name: str, host: str, sip_port: int, pid: int, advertised: str = "", hostname: str = "") -> int:
    node = BridgeNode.objects.create(name=name[:128], host=host[:255], sip_port=sip_port, pid=pid,
                                     advertised=advertised[:64], hostname=hostname[:128],
                                     heartbeat_at=timezone.now())
    return node.pk


def heartbeat_node(node_id: int) -> bool:
    """Prove the node is alive. False if its row is gone or was marked stopped (someone judged it
    dead): the runner then logs it loudly, since its calls may have been finalised by another."""
    return BridgeNode.objects.filter(pk=node_id, stopped_at__isnull=True).update(heartbeat_at=timezone.now()) == 1


def stop_node(node_id: int) -> None:
    now = timezone.now()
    BridgeNode.objects.filter(pk=node_id).update(stopped_at=now, heartbeat_at=now)


def _find_recording(call: Call) -> Path | None:
    """The recording of a call cut off by a crash: the path linked on the row at answer time, else
    the gateway's file name pattern ``call-<row id>-<Call-ID>.wav`` in the recordings folder."""
    media = Path(settings.MEDIA_ROOT)
    if call.recording:
        path = media / call.recording.name
        return path if path.exists() else None
    return next(iter(sorted((media / "recordings").glob(f"call-{call.pk}-*.wav"))), None)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a pid we can judge: trust the heartbeat
    return True


def mark_dead_nodes(*, timeout_s: float, exclude_node: int | None = None, hostname: str = "",
                    now: datetime | None = None) -> list[int]:
    """Mark stopped (at their last heartbeat) the nodes that died without saying so: heartbeat
    older than ``timeout_s``, or on this machine (``hostname``) with their pid gone — the latter
    lets a bridge restarted at once by systemd close the calls of the one that was just killed.
    A node marked so that is in fact alive finds out at its next heartbeat and logs it."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=timeout_s)
    dead = []
    for node in selectors.unstopped_nodes(exclude_node=exclude_node):
        gone = bool(hostname) and node.hostname == hostname and node.pid != os.getpid() and not _pid_alive(node.pid)
        if node.heartbeat_at < cutoff or gone:
            if BridgeNode.objects.filter(pk=node.pk, stopped_at__isnull=True).update(
                    stopped_at=min(now, node.heartbeat_at)):
                dead.append(node.pk)
    return dead


def _finalise_lost(calls: QuerySet[Call], now: datetime) -> int:
    finalised = 0
    for call in calls.select_related("bridge_node"):
        ended = now
        node = call.bridge_node
        if node is not None:
            ended = min(now, max(call.started_at, node.stopped_at or node.heartbeat_at))
        fields: dict = {"ended_at": ended, "end_reason": Call.EndReason.BRIDGE_LOST}
        path = _find_recording(call)
        if path is not None and repair_wav(path) is not None:
            fields["recording"] = _media_name(path)
        # ended_at__isnull: two bridges recovering at once finalise each row only once
        finalised += Call.objects.filter(pk=call.pk, ended_at__isnull=True).update(**fields)
    return finalised


def recover_orphaned_calls(*, timeout_s: float | None = None, exclude_node: int | None = None,
                           hostname: str = "", now: datetime | None = None) -> int:
    """At start: finalise every open call no live bridge owns (a dead node's, a stopped node's, or
    no node's) after SIGKILL, power loss or OOM: end reason ``bridge_lost``, ended at the dead
    node's last heartbeat (the best estimate of when the call was cut), recording header repaired
    and linked so the admin and dashboard play it. Calls of live nodes are left alone, so a
    second bridge on the same database never closes the first one's calls. Returns the count."""
    timeout_s = settings.SIP_NODE_TIMEOUT_S if timeout_s is None else timeout_s
    now = now or timezone.now()
    mark_dead_nodes(timeout_s=timeout_s, exclude_node=exclude_node, hostname=hostname, now=now)
    return _finalise_lost(selectors.orphaned_calls(timeout_s, exclude_node=exclude_node, now=now), now)


def reap_dead_nodes(*, timeout_s: float | None = None, exclude_node: int | None = None, hostname: str = "",
                    now: datetime | None = None) -> int:
    """While running (each heartbeat): a node that dies while others run gets its calls finalised
    by a survivor within ``timeout_s`` + one beat. One small query when nobody died."""
    timeout_s = settings.SIP_NODE_TIMEOUT_S if timeout_s is None else timeout_s
    now = now or timezone.now()
    dead = mark_dead_nodes(timeout_s=timeout_s, exclude_node=exclude_node, hostname=hostname, now=now)
    if not dead:
        return 0
    return _finalise_lost(Call.objects.filter(bridge_node__in=dead, ended_at__isnull=True), now)


def prune_dead_nodes(*, older_than_s: float = 86400.0, now: datetime | None = None) -> int:
    """Forget nodes dead for a day that own no open call (their calls keep their history with
    bridge_node = NULL), so the node table stays the size of the fleet."""
    cutoff = (now or timezone.now()) - timedelta(seconds=older_than_s)
    with transaction.atomic():
        old = set(BridgeNode.objects.filter(heartbeat_at__lt=cutoff).values_list("pk", flat=True))
        busy = set(Call.objects.filter(ended_at__isnull=True, bridge_node__in=old)
                   .values_list("bridge_node_id", flat=True))
        if not old - busy:
            return 0
        return BridgeNode.objects.filter(pk__in=old - busy).delete()[1].get("telephony.BridgeNode", 0)


def delete_calls(ids: list[int]) -> dict:
    """Delete these finished calls with their turns and tool calls (webhook deliveries stay, without
    the link) and then their recording files. A live call (not ended) is kept: its bridge still
    writes to it. One transaction; the files go only once it has committed, so a chunk that fails
    keeps both its rows and its recordings."""
    with transaction.atomic():
        found = dict(Call.objects.select_for_update().filter(pk__in=ids).values_list("pk", "ended_at"))
        done = Call.objects.filter(pk__in=ids, ended_at__isnull=False)
        files = [name for name in done.values_list("recording", flat=True) if name]
        _, per_model = done.delete()
        n = per_model.get(Call._meta.label, 0)
        transaction.on_commit(lambda: _remove_recordings(files))
    return {"deleted": n, "in_call": len(found) - n, "gone": len(set(ids)) - len(found), "recordings": len(files)}


def _remove_recordings(names: list[str]) -> None:
    root = Path(settings.MEDIA_ROOT).resolve()
    for name in names:
        path = (root / name).resolve()
        if path.is_relative_to(root):  # a stored name never leads out of MEDIA_ROOT
            path.unlink(missing_ok=True)
