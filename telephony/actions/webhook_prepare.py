"""Building a post-call webhook: the intent is stored first, the payload later.

The payload needs the bridge's end-of-call write (end reason, duration, recording) and one LLM
extraction request, together up to ~30 s after hang-up. A process that dies in that window must
not lose the webhook, so ``prepare()`` stores the delivery row at once as ``preparing`` (url,
event id, no payload) and ``complete()`` fills the payload later and moves it to ``pending`` with
a conditional UPDATE from ``preparing``: whoever completes it first (the live path or a worker)
wins, the other one changes nothing. ``finish_stale()`` is the worker's half: a ``preparing`` row
whose call ended more than ``PREPARE_GRACE_S`` ago has lost its live path (crash, SIGKILL, drain
end) and is completed by the worker, claimed first (``claimed_at``) so two workers do not both
spend an LLM request on it. One row per call (a partial unique constraint): a second ``prepare()``
for the same call finds the first one and adds nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid

from asgiref.sync import sync_to_async
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

log = logging.getLogger("telephony.actions")
NO_LLM = "no LLM key configured (offline): fields not extracted"
EXTRACT_TIMEOUT_S = 20.0
# the agent's cleanup runs before the bridge writes the Call row's end (reason, duration, recording):
# the delivery waits for that row, polling at most this long, and goes anyway after it
FINALISE_WAIT_S, FINALISE_POLL_S = 10.0, 0.2
# the live path completes a row within FINALISE_WAIT_S + EXTRACT_TIMEOUT_S of the call's end; a row
# still preparing this long after the end (and after its creation) lost its process: a worker takes it
PREPARE_GRACE_S = 120.0
# a row whose call is never finalised (no bridge left to mark a dead node's calls bridge_lost) is
# completed anyway after this long, with what the Call row says; a live call this long is not expected
PREPARE_MAX_S = 6 * 3600.0
CLAIM_STALE_S = 300  # a worker that claimed a row and died: another one takes it after this
CALL_DELETED = "the call was deleted before its webhook was prepared"


# --- the payload -------------------------------------------------------------------------------
def call_payload(call_id: int) -> dict:
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
    return {
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


def _extraction_inputs(call_id: int) -> tuple[dict, str, tuple[str, str] | None]:
    from campaigns import schema as schema_mod
    from campaigns.selectors import effective_config_for
    from campaigns.tools import runtime_actions
    from telephony.models import Call

    call = Call.objects.get(pk=call_id)
    actions = runtime_actions(call.campaign_id)
    fields = schema_mod.expand_fields(actions.extraction_schema)
    text = "\n".join(f"caller: {t.user_text}\nagent: {t.agent_text}" for t in call.turns.order_by("index"))
    cfg = effective_config_for(call.campaign)
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
                {"role": "user", "content": text[:20000]}]), EXTRACT_TIMEOUT_S)
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


# --- intent first, payload later ---------------------------------------------------------------
def _prepare(call_id: int) -> int | None:
    from campaigns.models import CampaignActions
    from telephony.models import Call, WebhookDelivery

    # one cheap read per call end (most campaigns have no webhook)
    campaign_id = Call.objects.filter(pk=call_id).values_list("campaign_id", flat=True).first()
    url = CampaignActions.objects.filter(campaign_id=campaign_id).values_list("webhook_url", flat=True).first()
    if campaign_id is None or not url:
        return None
    try:
        with transaction.atomic():  # a savepoint: the constraint's failure must not poison a caller's transaction
            row = WebhookDelivery.objects.create(
                call_id=call_id, campaign_id=campaign_id, event_id=str(uuid.uuid4()), url=url, payload={},
                status=WebhookDelivery.Status.PREPARING, next_at=timezone.now())
    except IntegrityError:  # one row per call: this call's webhook is queued already
        log.info("call %s: webhook already queued; not adding a second delivery", call_id)
        return None
    return row.pk


async def prepare(call_id: int) -> int | None:
    """Store the webhook's delivery row now, as ``preparing`` (no payload yet), so it outlives this
    process; its pk, or None when the campaign has no webhook or the call has its row already."""
    return await sync_to_async(_prepare)(call_id)


def _fill(pk: int, call_id: int, extraction: dict, now: dt.datetime) -> bool:
    from telephony.models import WebhookDelivery

    S = WebhookDelivery.Status
    payload = {**call_payload(call_id), **extraction}
    # the conditional UPDATE decides between finishers (live path, workers): one moves it, once
    return WebhookDelivery.objects.filter(pk=pk, status=S.PREPARING).update(
        status=S.PENDING, payload=payload, next_at=now, claimed_at=None) == 1


async def complete(pk: int, call_id: int, now: dt.datetime | None = None) -> bool:
    """Build the payload (extraction included, or ``extraction_skipped`` saying why) and move the row
    from ``preparing`` to ``pending``, due at ``now``. False when another finisher did it first."""
    extraction = await extract(call_id)
    return await sync_to_async(_fill)(pk, call_id, extraction, now or timezone.now())


# --- the worker's half: rows whose live path died ----------------------------------------------
def _claim_stale(now: dt.datetime, limit: int) -> list[tuple[int, int | None]]:
    from telephony.models import WebhookDelivery

    S = WebhookDelivery.Status
    cutoff = now - dt.timedelta(seconds=PREPARE_GRACE_S)
    lost = (Q(created_at__lte=cutoff) & (Q(call__isnull=True) | Q(call__ended_at__lte=cutoff))
            | Q(created_at__lte=now - dt.timedelta(seconds=PREPARE_MAX_S)))
    free = Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - dt.timedelta(seconds=CLAIM_STALE_S))
    out = []
    for row in WebhookDelivery.objects.filter(lost, free, status=S.PREPARING).order_by("created_at")[:limit]:
        # the claim: a worker that read the same row updates nothing and leaves it to this one
        if WebhookDelivery.objects.filter(pk=row.pk, status=S.PREPARING, claimed_at=row.claimed_at).update(
                claimed_at=now):
            out.append((row.pk, row.call_id))
    return out


def _give_up(pk: int, why: str) -> None:
    from telephony.models import WebhookDelivery

    S = WebhookDelivery.Status
    WebhookDelivery.objects.filter(pk=pk, status=S.PREPARING).update(status=S.FAILED, last_error=why)


async def finish_stale(now: dt.datetime | None = None, limit: int = 5) -> int:
    """Complete ``preparing`` rows whose live path is gone (see the module docstring), due at
    ``now`` (injectable); returns how many this worker moved to ``pending``. A row whose call was
    deleted meanwhile cannot get a payload: it is marked failed, saying so, for the admin log."""
    now = now or timezone.now()
    done = 0
    for pk, call_id in await sync_to_async(_claim_stale)(now, limit):
        try:
            if call_id is None:
                await sync_to_async(_give_up)(pk, CALL_DELETED)
                continue
            if await complete(pk, call_id, now):
                done += 1
                log.warning("webhook %s of call %s: completed by the worker (its live path was lost)", pk, call_id)
        except Exception:  # noqa: BLE001 - the next row still gets its turn; this one is retried when stale
            log.exception("could not complete the webhook %s of call %s", pk, call_id)
    return done
