"""The dialer's database side: campaign state, calling windows, claims, outcomes, progress.

Sync ORM functions the bridge's dialer (``telephony.bridge.dialer``) runs in a worker thread;
every time argument is passed in (``now``), so tests drive them with a fake clock.

Claims are safe with several bridges: candidates are read ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL (two bridges never wait on or take the same rows), and each claim is also a
conditional UPDATE (``state = pending``), so even where row locks do not exist (SQLite: one
dialer) a contact is claimed once. A claimed contact is in state ``calling`` until its outcome
is recorded: never two calls to one contact, and never one to a number that is also being called
for another campaign or is on the do-not-call list.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.db import connection, transaction
from django.db.models import Count, Min, Q

from aioptions.inputs import InputError

from .models import Campaign, Contact, DialerSettings, DoNotCall

ACTIONS = {"start": DialerSettings.State.RUNNING, "pause": DialerSettings.State.PAUSED,
           "stop": DialerSettings.State.STOPPED}
CANDIDATES = 200  # contacts looked at per claim round (window filtering happens in Python)


class CampaignNotFound(LookupError):
    pass


def settings_for(campaign_id: int) -> DialerSettings:
    if not Campaign.objects.filter(pk=campaign_id).exists():
        raise CampaignNotFound(f"campaign {campaign_id} does not exist")
    return DialerSettings.objects.get_or_create(campaign_id=campaign_id)[0]


def set_state(campaign_id: int, action: str) -> dict:
    """start / pause / stop. Starting needs an active trunk with allowed prefixes (else 400)."""
    if action not in ACTIONS:
        raise InputError(f"action must be one of {', '.join(ACTIONS)}", field="action")
    with transaction.atomic():
        s = settings_for(campaign_id)
        s = DialerSettings.objects.select_for_update(of=("self",)).select_related("trunk").get(pk=s.pk)
        if action == "start":
            if s.trunk is None or not s.trunk.active:
                raise InputError("the campaign has no active trunk (dialer settings)", field="trunk")
            if not s.trunk.prefixes:
                raise InputError(f"trunk {s.trunk.name!r} allows no destination prefix: outbound is off",
                                 field="trunk")
        s.state = ACTIONS[action]
        s.save(update_fields=["state"])
    return {"campaign": campaign_id, "state": s.state}


def in_window(s: DialerSettings, tz_name: str, now: dt.datetime) -> bool:
    """Is ``now`` inside the campaign's calling days and hours in the contact's time zone?"""
    try:
        tz = zoneinfo.ZoneInfo(tz_name or s.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = dt.UTC
    local = now.astimezone(tz)
    start, end, t = s.window_start, s.window_end, local.time()
    if start == end:  # 00:00-00:00: all day on the calling days
        return str(local.weekday()) in s.window_days
    if start < end:
        return str(local.weekday()) in s.window_days and start <= t < end
    # overnight window (e.g. 18:00-02:00): the part after midnight belongs to the previous day
    if t >= start:
        return str(local.weekday()) in s.window_days
    return t < end and str((local.weekday() - 1) % 7) in s.window_days


def running_campaigns() -> list[dict]:
    return list(DialerSettings.objects.filter(state=DialerSettings.State.RUNNING, trunk__active=True,
                                              campaign__active=True)
                .values("campaign_id", "max_concurrent", "calls_per_minute", "ring_timeout_s"))


def capacity(campaign_id: int, *, max_concurrent: int, calls_per_minute: int, now: dt.datetime) -> int:
    """How many calls the campaign may start now: concurrency and per-minute pacing (all bridges)."""
    qs = Contact.objects.filter(campaign_id=campaign_id)
    calling = qs.filter(state=Contact.State.CALLING).count()
    recent = qs.filter(last_attempt_at__gt=now - dt.timedelta(seconds=60)).count()
    return max(0, min(max_concurrent - calling, calls_per_minute - recent))


def claim_due(campaign_id: int, *, limit: int, node: str, now: dt.datetime) -> list[dict]:
    """Claim up to ``limit`` due contacts in their calling window; each comes back as a dict."""
    if limit <= 0:
        return []
    s = DialerSettings.objects.get(campaign_id=campaign_id)
    busy_phones = Contact.objects.filter(state=Contact.State.CALLING).values("phone")
    claimed: list[dict] = []
    with transaction.atomic():
        qs = (Contact.objects.filter(campaign_id=campaign_id, state=Contact.State.PENDING)
              .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
              .exclude(phone__in=busy_phones).order_by("next_attempt_at", "id"))
        if connection.features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        candidates = list(qs[:CANDIDATES])
        dnc = set(DoNotCall.objects.filter(phone__in=[c.phone for c in candidates]).values_list("phone", flat=True))
        for c in candidates:
            if c.phone in dnc:
                Contact.objects.filter(pk=c.pk).update(state=Contact.State.DNC)
                continue
            if not in_window(s, c.timezone, now):
                continue
            won = Contact.objects.filter(pk=c.pk, state=Contact.State.PENDING).update(
                state=Contact.State.CALLING, claimed_by=node[:128], attempts=c.attempts + 1, last_attempt_at=now)
            if won:
                claimed.append({"id": c.pk, "phone": c.phone, "name": c.name, "variables": c.variables,
                                "campaign_id": campaign_id, "attempt": c.attempts + 1})
            if len(claimed) >= limit:
                break
    return claimed


def record_outcome(contact_id: int, outcome: str, *, now: dt.datetime, count_attempt: bool = True) -> str:
    """After a call: done when answered (or a voicemail was left), else retry after the delay for
    this outcome while attempts remain, else failed. ``count_attempt=False`` gives the attempt back
    (the trunk was full: nothing was dialled). Returns the contact's new state."""
    with transaction.atomic():
        c = Contact.objects.select_for_update().filter(pk=contact_id).first()
        if c is None or c.state != Contact.State.CALLING:
            return c.state if c else ""
        s = DialerSettings.objects.filter(campaign_id=c.campaign_id).first()
        delays = (s.retry_delays if s else {}) or {}
        c.last_outcome, c.claimed_by = outcome[:16], ""
        if not count_attempt:
            c.attempts = max(0, c.attempts - 1)
            c.state, c.next_attempt_at = Contact.State.PENDING, now + dt.timedelta(seconds=30)
        elif outcome == "answered":
            c.state = Contact.State.DONE
        elif DoNotCall.objects.filter(phone=c.phone).exists():
            c.state = Contact.State.DNC
        elif delays.get(outcome) is not None and c.attempts < (s.max_attempts if s else 1):
            c.state = Contact.State.PENDING
            c.next_attempt_at = now + dt.timedelta(seconds=float(delays[outcome]))
        else:
            c.state = Contact.State.FAILED if outcome != "voicemail" else Contact.State.DONE
        c.save(update_fields=["state", "last_outcome", "claimed_by", "attempts", "next_attempt_at"])
        return c.state


def release_claims(live_nodes: list[str]) -> int:
    """Contacts left ``calling`` by a bridge that died go back to pending (attempt not counted)."""
    stale = Contact.objects.filter(state=Contact.State.CALLING).exclude(claimed_by__in=live_nodes)
    return stale.update(state=Contact.State.PENDING, claimed_by="")


def progress(campaign_id: int, *, now: dt.datetime) -> dict:
    s = settings_for(campaign_id)
    qs = Contact.objects.filter(campaign_id=campaign_id)
    by_state = dict(qs.values_list("state").annotate(n=Count("id")).order_by())
    by_outcome = dict(qs.exclude(last_outcome="").values_list("last_outcome").annotate(n=Count("id")).order_by())
    nxt = qs.filter(state=Contact.State.PENDING, next_attempt_at__isnull=False).order_by("next_attempt_at")
    return {"campaign": campaign_id, "state": s.state, "contacts": qs.count(),
            "by_state": {k: by_state.get(k, 0) for k in Contact.State.values}, "by_outcome": by_outcome,
            "calls_now": by_state.get(Contact.State.CALLING, 0),
            "due_now": qs.filter(state=Contact.State.PENDING).filter(
                Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)).count(),
            "next_attempts": [{"contact": c.pk, "phone": c.phone, "at": c.next_attempt_at.isoformat()}
                              for c in nxt[:5]],
            "next_attempt_at": (qs.filter(state=Contact.State.PENDING).aggregate(m=Min("next_attempt_at"))["m"]),
            "attempts": sum(qs.values_list("attempts", flat=True))}
