"""The post-call webhook: after hang-up, a signed POST with the call, transcript, outcome and the
fields the LLM extracted, persisted first (WebhookDelivery) so nothing is lost to a crash.

Flow: ``after_call()`` (the agent's cleanup) stores the delivery row at once, as ``preparing``
(url and event id, no payload: webhook_prepare); then waits for the call's end and the bridge's
Call row, extracts fields with one JSON-mode LLM request (skipped without an LLM key:
``extraction_skipped`` says why), fills the payload and moves the row to ``pending`` with a
conditional UPDATE. ``deliver_due()`` first completes ``preparing`` rows whose live path died (a
crash, SIGKILL or drain end in that ~30 s window: their call ended over ``PREPARE_GRACE_S`` ago),
then claims due rows with a conditional UPDATE (two workers never send the same row at once),
POSTs them through the SSRF guard, and on failure backs off exponentially (30 s, 60 s, ... capped
at 1 h) until ``WEBHOOK_MAX_AGE_S`` (a day) has passed. A row left in ``sending`` by a crash is
retried after ``STALE_S``; ``X-Talky-Delivery`` lets the receiver drop the rare repeat (a crash
between the receiver's 2xx and our write). One row per call (a unique constraint): a second
``after_call()`` adds nothing. Retriggered by hand in the admin (the "redeliver" action resets a row).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from . import httpclient, signing
from .webhook_prepare import (  # noqa: F401 - re-exported: callers and tests know them as webhooks.*
    FINALISE_POLL_S,
    FINALISE_WAIT_S,
    NO_LLM,
    PREPARE_GRACE_S,
    complete,
    extract,
    finish_stale,
    prepare,
    wait_finished,
)

log = logging.getLogger("telephony.actions")
STALE_S = 300
BACKOFF_S, BACKOFF_MAX_S = 30, 3600


def backoff(attempts: int) -> float:
    return min(BACKOFF_MAX_S, BACKOFF_S * 2 ** max(0, attempts - 1))


# --- queueing --------------------------------------------------------------------------------
async def after_call(call_id: int | None, *, wait_finished_s: float = 0.0,
                     ended: asyncio.Event | None = None) -> int | None:
    """Store the delivery (if the campaign has a webhook) before anything slow, then complete it:
    wait for ``ended`` (the call's real end: after a bridged transfer it goes on without the agent),
    then at most ``wait_finished_s`` for the bridge to write the Call row (end reason, duration,
    recording), then extract. The pk once the row is pending; None without a webhook, when the
    call has its row already, or when this path failed (the row stays ``preparing`` and a worker
    completes it after the grace period)."""
    if call_id is None:
        return None
    try:
        pk = await prepare(call_id)
    except Exception:  # noqa: BLE001 - a webhook must never break a call's cleanup
        log.exception("could not queue the webhook of call %s", call_id)
        return None
    if pk is None:
        return None
    try:
        if ended is not None and not ended.is_set():
            await ended.wait()
        if wait_finished_s > 0 and not await wait_finished(call_id, wait_finished_s):
            log.warning("call %s: the Call row was not finalised in %.0f s; sending its webhook anyway", call_id,
                        wait_finished_s)
        if not await complete(pk, call_id):
            return None  # a worker completed it first (this path was slower than the grace period)
    except Exception:  # noqa: BLE001 - the row is stored: the worker completes it
        log.exception("could not prepare the webhook of call %s; the worker will", call_id)
        return None
    return pk


# --- delivering ------------------------------------------------------------------------------
def _claim(now: dt.datetime, limit: int) -> list[tuple[int, str, bytes, str, str]]:
    from django.db.models import Q

    from campaigns.tools import signing_secret
    from telephony.models import WebhookDelivery

    S = WebhookDelivery.Status
    stale = now - dt.timedelta(seconds=STALE_S)
    due = WebhookDelivery.objects.filter(Q(status=S.PENDING, next_at__lte=now) | Q(status=S.SENDING,
                                                                                  claimed_at__lt=stale))
    out = []
    for row in due.order_by("next_at")[:limit]:
        # the conditional UPDATE is the claim: another worker that read the same row updates nothing
        if WebhookDelivery.objects.filter(pk=row.pk, status=row.status, claimed_at=row.claimed_at).update(
                status=S.SENDING, claimed_at=now):
            body = json.dumps({**row.payload, "delivery_id": row.event_id}, separators=(",", ":")).encode()
            secret = signing_secret(row.campaign_id) if row.campaign_id else ""
            out.append((row.pk, row.url, body, secret, row.event_id))
    return out


def _finish(pk: int, ok: bool, status: int | None, error: str, now: dt.datetime) -> None:
    from telephony.models import WebhookDelivery

    S = WebhookDelivery.Status
    row = WebhookDelivery.objects.get(pk=pk)
    row.attempts += 1
    row.last_status, row.last_error = status, error[:300]
    if ok:
        row.status, row.delivered_at = S.DELIVERED, now
    elif (now - row.created_at).total_seconds() >= settings.WEBHOOK_MAX_AGE_S:
        row.status = S.FAILED
    else:
        row.status, row.next_at = S.PENDING, now + dt.timedelta(seconds=backoff(row.attempts))
    row.save(update_fields=["attempts", "last_status", "last_error", "status", "delivered_at", "next_at"])


async def deliver_due(now: dt.datetime | None = None, limit: int = 20) -> int:
    """Complete the ``preparing`` rows a dead process left, then send every due delivery once;
    returns how many were attempted. ``now`` is injectable."""
    now = now or timezone.now()
    try:
        await finish_stale(now)
    except Exception:  # noqa: BLE001 - a failure there must not hold up the rows that are ready
        log.exception("completing the stale preparing webhooks failed")
    claimed = await sync_to_async(_claim)(now, limit)
    for pk, url, body, secret, event_id in claimed:
        headers = {**signing.signed_headers(secret, body), "X-Talky-Delivery": event_id}
        res = await httpclient.send("POST", url, body, headers, 10.0)
        await sync_to_async(_finish)(pk, res.ok, res.status, res.error, now)
    return len(claimed)


async def worker(stop: asyncio.Event, interval_s: float = 5.0, wake: asyncio.Event | None = None,
                 on_round: Callable[[int], None] | None = None) -> None:
    """The background task (bridge or web process): deliver what is due until ``stop``. ``wake``
    runs a round at once instead of at the next interval; ``on_round(attempted)`` follows each."""
    wake = wake or asyncio.Event()
    while not stop.is_set():
        attempted = 0
        try:
            attempted = await deliver_due()
        except Exception:  # noqa: BLE001 - keep delivering after a database hiccup
            log.exception("webhook delivery round failed")
        if on_round is not None:
            on_round(attempted)
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=interval_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        wake.clear()


class WebhookWorker:
    """``worker()`` as a task the bridge runner owns: started with the bridge, stopped (after the
    round in flight) before it closes. ``wake()`` runs a round now; ``rounds`` counts them and
    ``round_done`` is set after each, so a test waits for an event rather than a clock."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self.rounds = 0
        self.attempted = 0  # deliveries attempted by all rounds
        self.round_done = asyncio.Event()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            worker(self._stop, self.interval_s, self._wake, self._counted))

    def _counted(self, attempted: int) -> None:
        self.rounds += 1
        self.attempted += attempted
        self.round_done.set()

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 15)  # a POST in flight is bounded by its 10 s timeout
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
