"""Writes to campaigns: validated, atomic, recorded in the AI change history, broadcast."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from aioptions import campaign_hooks, catalog, inputs
from aioptions.events import broadcast_config
from aioptions.inputs import InputError
from aioptions.models import AIConfigChange
from aioptions.services import ValidationError, as_validation_error

from .models import Campaign, Contact


class CampaignNotFound(campaign_hooks.CampaignNotFound):
    pass


def campaign_dict(c: Campaign) -> dict:
    voice = c.voice
    return {
        "id": c.pk, "name": c.name, "extension": c.extension, "active": c.active,
        "is_default": c.is_default,
        "voice": {"provider": c.voice_provider or None, "voice_id": c.voice_id or None,
                  "voice_name": voice.name if voice else None},
        "llm": {"provider": c.llm_provider or None, "model": c.llm_model or None},
    }


def _checked(check, *args, **kwargs):
    try:
        return check(*args, **kwargs)
    except InputError as exc:
        raise as_validation_error(exc) from None


def _record(c: Campaign, part: str, old: tuple[str, str], new: tuple[str, str], *, user, source: str) -> None:
    """One row of the AI change history for a campaign's voice or LLM (the options page lists them)."""
    key = "voice_id" if part == "voice" else "model"
    AIConfigChange.objects.create(user=user if getattr(user, "pk", None) else None, source=source,
                                  target=f"campaign:{c.pk}", field=part,
                                  old_value={"provider": old[0], key: old[1]},
                                  new_value={"provider": new[0], key: new[1]})


def set_campaign_voice(*, campaign_id: Any, provider: Any, voice_id: Any, user=None,
                       source: str = "api") -> dict:
    """Assign a catalog voice to a campaign; empty provider and voice_id clear it (global voice).

    Raises CampaignNotFound (404) or ValidationError (400); nothing is saved on error.
    """
    cid = _checked(inputs.pk, campaign_id, "campaign_id")
    provider = _checked(inputs.name, provider, "provider", max_len=32, allow_empty=True)
    voice_id = _checked(inputs.name, voice_id, "voice_id", allow_empty=True)
    clearing = not provider and not voice_id
    if not clearing:
        try:
            catalog.validate_voice(provider, voice_id)
        except catalog.CatalogError as exc:
            raise ValidationError(str(exc), field="voice_id") from None
    new_provider, new_voice = ("", "") if clearing else (provider, voice_id)
    with transaction.atomic():
        try:
            c = Campaign.objects.select_for_update().get(pk=cid)
        except Campaign.DoesNotExist:
            raise CampaignNotFound(f"campaign {cid} does not exist") from None
        old = (c.voice_provider, c.voice_id)
        changed = old != (new_provider, new_voice)
        if changed:
            c.voice_provider, c.voice_id = new_provider, new_voice
            c.save(update_fields=["voice_provider", "voice_id", "updated_at"])
            _record(c, "voice", old, (new_provider, new_voice), user=user, source=source)
        payload = {"target": f"campaign:{c.pk}", "campaign": campaign_dict(c),
                   "changed": ["voice"] if changed else []}
        if changed:
            transaction.on_commit(lambda: broadcast_config(payload))
    return payload


# The campaign fields the admin form edits besides voice and LLM (which are checked against the catalog)
CAMPAIGN_FIELDS = ("name", "extension", "active", "is_default", "system_prompt", "greeting", "preview_text")


def _pair(check, provider: str, ident: str, field: str) -> tuple[str, str]:
    """A catalog (provider, id) pair, or ("", "") for "use the global one"; half a pair is refused."""
    if not provider and not ident:
        return "", ""
    try:
        check(provider, ident)
    except catalog.CatalogError as exc:
        raise ValidationError(str(exc), field=field) from None
    return provider, ident


def check_campaign(*, campaign_id: int | None, is_default: bool, voice: tuple[str, str],
                   llm: tuple[str, str]) -> None:
    """What ``save_campaign`` would refuse, asked before saving so a form can show it on the field;
    ``save_campaign`` checks again under the lock."""
    _pair(catalog.validate_voice, *voice, field="voice")
    _pair(catalog.validate_llm, *llm, field="llm")
    if is_default:
        _no_other_default(campaign_id, lock=False)


def _no_other_default(campaign_id: int | None, *, lock: bool) -> None:
    others = Campaign.objects.filter(is_default=True).exclude(pk=campaign_id or 0)
    if lock:
        others = others.select_for_update()
    other = others.first()
    if other is not None:
        raise ValidationError(f"{other} is already the default campaign", field="is_default")


def save_campaign(*, campaign_id: int | None, fields: dict[str, Any], voice: tuple[str, str],
                  llm: tuple[str, str], user=None, source: str = "admin") -> Campaign:
    """Create (``campaign_id`` None) or update a campaign with its voice and LLM override in one
    transaction: catalog and default-campaign checks inside the row lock, one save, voice/LLM
    changes in the AI change history, a broadcast after commit so open pages show it. The admin's
    write; the API and the pages change the voice through ``set_campaign_voice``.

    ``fields`` holds already-cleaned values of CAMPAIGN_FIELDS (the admin's ModelForm cleaned them).
    Raises CampaignNotFound or ValidationError; nothing is saved on error.
    """
    unknown = set(fields) - set(CAMPAIGN_FIELDS)
    if unknown:
        raise ValidationError(f"unknown campaign field(s): {', '.join(sorted(unknown))}")
    with transaction.atomic():
        if campaign_id is None:
            c, old = Campaign(), None
        else:
            try:
                c = Campaign.objects.select_for_update().get(pk=campaign_id)
            except Campaign.DoesNotExist:
                raise CampaignNotFound(f"campaign {campaign_id} does not exist") from None
            old = {"voice": (c.voice_provider, c.voice_id), "llm": (c.llm_provider, c.llm_model)}
        new = {"voice": _pair(catalog.validate_voice, *voice, field="voice"),
               "llm": _pair(catalog.validate_llm, *llm, field="llm")}
        if fields.get("is_default"):
            _no_other_default(campaign_id, lock=True)
        changed = [k for k in CAMPAIGN_FIELDS if k in fields and (old is None or getattr(c, k) != fields[k])]
        for k in CAMPAIGN_FIELDS:
            if k in fields:
                setattr(c, k, fields[k])
        c.voice_provider, c.voice_id = new["voice"]
        c.llm_provider, c.llm_model = new["llm"]
        c.save()
        for part in ("voice", "llm"):
            if old is not None and old[part] != new[part]:
                changed.append(part)
                _record(c, part, old[part], new[part], user=user, source=source)
        if old is None:
            changed = ["created"]
        if changed:
            payload = {"target": f"campaign:{c.pk}", "campaign": campaign_dict(c), "changed": changed}
            transaction.on_commit(lambda: broadcast_config(payload))
    return c


# --- bulk changes to contacts (admin actions, run chunk by chunk by campaigns.jobs) -------------
def requeue_contacts(ids: list[int]) -> dict:
    """Put these contacts back in the dialer's queue: pending, due now, attempts from zero (the
    last outcome stays as history). A contact in a call or on do-not-call is left alone, so a
    re-queue never interrupts a live call or dials a number that must not be called. One
    transaction: all of ``ids`` or none."""
    with transaction.atomic():
        found = dict(Contact.objects.select_for_update().filter(pk__in=ids).values_list("pk", "state"))
        # the state test is in the UPDATE itself: a contact the dialer claims meanwhile is not touched
        n = (Contact.objects.filter(pk__in=ids).exclude(state__in=(Contact.State.CALLING, Contact.State.DNC))
             .update(state=Contact.State.PENDING, attempts=0, next_attempt_at=None, claimed_by=""))
    states = list(found.values())
    return {"requeued": n, "in_call": states.count(Contact.State.CALLING),
            "do_not_call": states.count(Contact.State.DNC), "gone": len(set(ids)) - len(found)}


def delete_contacts(ids: list[int]) -> dict:
    """Delete these contacts (their calls keep their records, without the contact link). A contact
    in a call is kept: the dialer still has to record its outcome. One transaction: all or none."""
    with transaction.atomic():
        found = dict(Contact.objects.select_for_update().filter(pk__in=ids).values_list("pk", "state"))
        _, per_model = Contact.objects.filter(pk__in=ids).exclude(state=Contact.State.CALLING).delete()
    n = per_model.get(Contact._meta.label, 0)
    return {"deleted": n, "in_call": len(found) - n, "gone": len(set(ids)) - len(found)}
