"""The post-call webhook: after hang-up, a signed POST with the call, transcript, outcome and the
fields the LLM extracted, persisted first (WebhookDelivery) so retries survive a restart.

Flow: ``after_call()`` (the agent's cleanup) extracts fields with one LLM request asking for a
JSON object (skipped without an LLM key: ``extraction_skipped`` says why) and stores a pending
delivery; ``deliver_due()`` claims due rows with a conditional UPDATE (two workers never send the
same row at once), POSTs them through the SSRF guard, and on failure backs off exponentially
(30 s, 60 s, ... capped at 1 h) until ``WEBHOOK_MAX_AGE_S`` (a day) has passed. A row left in
``sending`` by a crash is retried after ``STALE_S``; ``X-Talky-Delivery`` lets the receiver drop
the rare repeat. Retriggered by hand in the admin (the "redeliver" action resets a row).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from . import httpclient, signing

log = logging.getLogger("telephony.actions")
STALE_S = 300
BACKOFF_S, BACKOFF_MAX_S = 30, 3600
NO_LLM = "no LLM key configured (offline): fields not extracted"
# the agent's cleanup runs before the bridge writes the Call row's end (reason, duration, recording):
# the delivery waits for that row, polling at most this long, and goes anyway after it
FINALISE_WAIT_S, FINALISE_POLL_S = 10.0, 0.2


def backoff(attempts: int) -> float:
    return min(BACKOFF_MAX_S, BACKOFF_S * 2 ** max(0, attempts - 1))


# --- building --------------------------------------------------------------------------------
def _call_payload(call_id: int) -> tuple[dict, object]:
    from telephony.models import Call

    call = Call.objects.select_related("campaign").get(pk=call_id)
    turns = list(call.turns.order_by("index").prefetch_related("tool_calls"))
    transcript = []
    for t in turns:
        if t.user_text:
            transcript.append({"role": "caller", "text": t.user_text, "turn": t.index})
        if t.agent_text:
            transcript.append({"role": "agent", "text": t.agent_text, "turn": t.index,
                               "tools": [{"name": c.name, "status": c.status} for c in t.tool_calls.all()]})
    payload = {
        "event": "call.ended",
        "call": {"id": call.pk, "sip_call_id": call.sip_call_id, "direction": call.direction,
                 "caller": call.caller_uri, "dialed": call.dialed, "campaign_id": call.campaign_id,
                 "started_at": call.started_at.isoformat() if call.started_at else None,
                 "answered_at": call.answered_at.isoformat() if call.answered_at else None,
                 "ended_at": call.ended_at.isoformat() if call.ended_at else None,
                 "duration_s": call.duration_s, "end_reason": call.end_reason,
                 "recording_url": call.recording.url if call.recording else None},
        "outcome": call.outcome or call.end_reason or "",
        "transcript": transcript,
    }
    return payload, call


def _enqueue(call_id: int, extraction: dict) -> int | None:
    from campaigns.tools import runtime_actions
    from telephony.models import WebhookDelivery

    payload, call = _call_payload(call_id)
    actions = runtime_actions(call.campaign_id)
    if not actions.webhook_url:
        return None
    payload.update(extraction)
    row = WebhookDelivery.objects.create(call_id=call_id, campaign_id=call.campaign_id, event_id=str(uuid.uuid4()),
                                         url=actions.webhook_url, payload=payload, next_at=timezone.now())
    return row.pk


def _extraction_inputs(call_id: int) -> tuple[dict, str, tuple[str, str] | None]:
    from campaigns import schema as schema_mod
    from campaigns.tools import runtime_actions
    from telephony.models import Call
    from telephony.pipeline.store import _resolve

    call = Call.objects.get(pk=call_id)
    actions = runtime_actions(call.campaign_id)
    fields = schema_mod.expand_fields(actions.extraction_schema)
    text = "\n".join(f"caller: {t.user_text}\nagent: {t.agent_text}" for t in call.turns.order_by("index"))
    _, cfg = _resolve(call.campaign_id)
    llm = None if cfg.llm_provider == "offline" else (cfg.llm_provider, cfg.llm_model)
    return fields, text, llm


async def extract(call_id: int) -> dict:
    """``{"extraction": {...}}`` from one JSON-mode LLM request, or a marker saying why not."""
    fields, text, llm = await sync_to_async(_extraction_inputs)(call_id)
    if not fields:
        return {"extraction": None, "extraction_skipped": "no extraction fields configured"}
    if llm is None:
        return {"extraction": None, "extraction_skipped": NO_LLM}
    from aioptions.providers import factory

    client = factory.build_llm_for(*llm)
    try:
        resp = await asyncio.wait_for(client.client.chat.completions.create(
            model=llm[1], response_format={"type": "json_object"}, messages=[
                {"role": "system", "content": "Extract these fields from the phone call transcript as one JSON "
                                              "object (null when the call did not say): " + json.dumps(fields)},
                {"role": "user", "content": text[:20000]}]), 20)
        data = json.loads(resp.choices[0].message.content or "{}")
        keys = set(fields.get("properties", {}))
        return {"extraction": {k: v for k, v in data.items() if k in keys} if isinstance(data, dict) else None}
    except Exception as exc:  # noqa: BLE001 - the webhook still goes, saying why
        return {"extraction": None, "extraction_skipped": f"extraction failed ({type(exc).__name__})"}
    finally:
        await client.aclose()


def _finished(call_id: int) -> bool:
    from telephony.models import Call

    return Call.objects.filter(pk=call_id, ended_at__isnull=False).exists()


async def wait_finished(call_id: int, timeout_s: float = FINALISE_WAIT_S, poll_s: float = FINALISE_POLL_S) -> bool:
    """True once the bridge has finalised the Call row (``ended_at`` set); False after ``timeout_s``.
    A bounded poll: the row is written by another component (the runner's end-of-call hook)."""
    for _ in range(int(timeout_s / poll_s) + 1):
        if await sync_to_async(_finished)(call_id):
            return True
        await asyncio.sleep(poll_s)
    return False


async def after_call(call_id: int | None, *, wait_finished_s: float = 0.0) -> int | None:
    """Extract and store the delivery (if the campaign has a webhook), then try it once now.
    ``wait_finished_s``: first wait (bounded) for the bridge to write the call's end, so the
    payload carries the end reason ("transferred", "bye"...), duration and recording."""
    if call_id is None:
        return None
    try:
        has_hook = await sync_to_async(_has_webhook)(call_id)
        if not has_hook:
            return None
        if wait_finished_s > 0 and not await wait_finished(call_id, wait_finished_s):
            log.warning("call %s: the Call row was not finalised in %.0f s; sending its webhook anyway", call_id,
                        wait_finished_s)
        pk = await sync_to_async(_enqueue)(call_id, await extract(call_id))
    except Exception:  # noqa: BLE001 - a webhook must never break a call's cleanup
        log.exception("could not queue the webhook of call %s", call_id)
        return None
    return pk


def _has_webhook(call_id: int) -> bool:
    from campaigns.models import CampaignActions
    from telephony.models import Call

    campaign_id = Call.objects.filter(pk=call_id).values_list("campaign_id", flat=True).first()
    return CampaignActions.objects.filter(campaign_id=campaign_id).exclude(webhook_url="").exists()


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
    """Send every due delivery once; returns how many were attempted. ``now`` is injectable."""
    now = now or timezone.now()
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
