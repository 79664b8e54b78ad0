"""Bulk admin actions that can be long (issue 20): re-queue and delete contacts here, delete calls
(with their recordings) from telephony, which registers its op with ``register_op``. A selection of
up to one chunk runs at once, as any admin action; a larger one becomes a ``jobs`` job with a
progress page (``views_jobs``) that handles CHUNK rows per step, each chunk in one transaction
through the op's service function. Deleting asks first on that page, with the count, instead of
Django's confirmation page (which lists every object and its related rows: far too slow for tens
of thousands).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.shortcuts import redirect
from django.urls import reverse

from . import jobs, services


@dataclass(frozen=True)
class Op:
    label: str  # the page's title
    noun: str  # what the rows are, for "n of N contacts"
    service: Callable[[list[int]], dict]  # one chunk, one transaction: counts by outcome
    perm: str  # what every step re-checks
    back: str  # the admin list to go back to (URL name)
    confirm: str = ""  # the question asked before a destructive job starts ("" = none)
    labels: dict = field(default_factory=dict)  # the op's own count names


COUNT_LABELS = {"requeued": "re-queued", "deleted": "deleted", "in_call": "left alone: in a call now",
                "do_not_call": "left alone: on do-not-call", "gone": "already deleted by someone else"}
OPS: dict[str, Op] = {}
MAX_SELECTION = 200_000  # the ids live in the job's state file, rewritten at every step


def _chunk(st: dict, _input: Path) -> None:
    """One chunk: the next CHUNK ids through the op's service (one transaction), then the counts."""
    ids = st["ids"][st["done"]:st["done"] + jobs.CHUNK]
    part = OPS[st["kind"]].service(ids)
    for key, n in part.items():
        st["counts"][key] = st["counts"].get(key, 0) + n
    st["done"] += len(ids)


def register_op(kind: str, op: Op) -> None:
    OPS[kind] = op
    jobs.register(kind)(_chunk)


register_op("contacts_requeue", Op("Re-queue contacts", "contacts", services.requeue_contacts,
                                   "campaigns.change_contact", "admin:campaigns_contact_changelist"))
register_op("contacts_delete", Op("Delete contacts", "contacts", services.delete_contacts, "campaigns.delete_contact",
                                  "admin:campaigns_contact_changelist",
                                  "Delete {total} contacts? Their calls keep their records and recordings."))


def describe(st: dict) -> dict:
    """What the progress page shows about a job: title, noun, question, result lines, way back."""
    op = OPS.get(st.get("kind", ""))
    if op is None:
        raise jobs.JobNotFound(st.get("kind"))
    labels = {**COUNT_LABELS, **op.labels}
    return {"label": op.label, "noun": op.noun, "question": op.confirm.format(total=st["total"]),
            "back": reverse(op.back), "summary": [(labels.get(k, k), n) for k, n in st.get("counts", {}).items() if n]}


def start(kind: str, ids: list[int], user) -> str:
    op = OPS[kind]
    if len(ids) > MAX_SELECTION:
        raise ValueError(f"at most {MAX_SELECTION} {op.noun} at a time ({len(ids)} selected): filter the list first")
    return jobs.start(kind, total=len(ids), user_id=user.pk, perm=op.perm, confirm=bool(op.confirm),
                      fields={"ids": ids, "counts": {}})


def _summary_text(kind: str, part: dict) -> str:
    labels = {**COUNT_LABELS, **OPS[kind].labels}
    return ", ".join(f"{n} {labels.get(k, k)}" for k, n in part.items() if n) or "nothing to change"


def _job_or_error(request, kind: str, ids: list[int]):
    """Start the job and go to its page; a selection too large stays on the list with the reason."""
    try:
        token = start(kind, ids, request.user)
    except ValueError as exc:
        messages.error(request, str(exc))
        return None
    return redirect("campaigns:job", token=token)


def delete_rows(kind: str, request, queryset) -> None:
    """Delete a selection through the op's service (a ModelAdmin's ``delete_queryset``), so Django's
    own delete of a small selection keeps the same rules as the job (rows in a call kept, files
    removed) and says what it kept."""
    part = OPS[kind].service(list(queryset.values_list("pk", flat=True)))
    if part.get("in_call"):
        n, noun = part["in_call"], OPS[kind].noun
        messages.warning(request, f"{n} {noun if n != 1 else noun.rstrip('s')} still in progress "
                                  f"{'were' if n != 1 else 'was'} kept")


def delete_action(kind: str):
    """An admin ``delete_selected`` that replaces Django's for a large selection: Django's own (with
    its confirmation page) up to one chunk, else a job that asks first."""
    @admin.action(description="Delete selected %(verbose_name_plural)s", permissions=["delete"])
    def delete_selected(modeladmin, request, queryset):
        ids = list(queryset.order_by("pk").values_list("pk", flat=True))
        if len(ids) <= jobs.CHUNK:
            return django_delete_selected(modeladmin, request, queryset)
        return _job_or_error(request, kind, ids)
    return delete_selected


@admin.action(description="Re-queue for the dialer (pending, due now, attempts reset)", permissions=["change"])
def requeue_contacts(modeladmin, request, queryset):
    ids = list(queryset.order_by("pk").values_list("pk", flat=True))
    if len(ids) <= jobs.CHUNK:
        part = services.requeue_contacts(ids)
        modeladmin.message_user(request, f"Contacts: {_summary_text('contacts_requeue', part)}")
        return None
    return _job_or_error(request, "contacts_requeue", ids)


delete_selected = delete_action("contacts_delete")
