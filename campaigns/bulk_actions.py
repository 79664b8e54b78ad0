"""Bulk actions on contacts that can be long (issue 20): re-queue and delete. A selection of up to
one chunk runs at once, as any admin action; a larger one becomes a ``jobs`` job with a progress
page (``views_jobs``) that changes CHUNK contacts per step, each chunk in one transaction through
``services.requeue_contacts`` / ``services.delete_contacts``. Deleting asks first on that page,
with the count, instead of Django's confirmation page (which lists every object and every
related call, far too slow for tens of thousands of rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.shortcuts import redirect

from . import jobs, services


@dataclass(frozen=True)
class Op:
    label: str  # the page's title
    service: str  # the name of the services function that does one chunk
    perm: str  # what every step re-checks
    confirm: str  # the question asked before a destructive job starts ("" = none)


OPS = {
    "contacts_requeue": Op("Re-queue contacts", "requeue_contacts", "campaigns.change_contact", ""),
    "contacts_delete": Op("Delete contacts", "delete_contacts", "campaigns.delete_contact",
                          "Delete {total} contacts? Their calls keep their records and recordings."),
}
COUNT_LABELS = {"requeued": "re-queued", "deleted": "deleted", "in_call": "left alone: in a call now",
                "do_not_call": "left alone: on do-not-call", "gone": "already deleted by someone else"}


def _chunk(st: dict, _input: Path) -> None:
    """One chunk: the next CHUNK ids through the op's service (one transaction), then the counts.
    The service is looked up at each step so the job always runs the current code."""
    ids = st["ids"][st["done"]:st["done"] + jobs.CHUNK]
    part = getattr(services, OPS[st["kind"]].service)(ids)
    for key, n in part.items():
        st["counts"][key] = st["counts"].get(key, 0) + n
    st["done"] += len(ids)


for _kind in OPS:
    jobs.register(_kind)(_chunk)


def describe(st: dict) -> dict:
    """What the progress page shows about a job: its title, question and the result lines."""
    op = OPS.get(st.get("kind", ""))
    if op is None:
        raise jobs.JobNotFound(st.get("kind"))
    return {"label": op.label, "question": op.confirm.format(total=st["total"]),
            "summary": [(COUNT_LABELS.get(k, k), n) for k, n in st.get("counts", {}).items() if n]}


def start(kind: str, ids: list[int], user) -> str:
    op = OPS[kind]
    return jobs.start(kind, total=len(ids), user_id=user.pk, perm=op.perm, confirm=bool(op.confirm),
                      fields={"ids": ids, "counts": {}})


def _summary_text(part: dict) -> str:
    return ", ".join(f"{n} {COUNT_LABELS.get(k, k)}" for k, n in part.items() if n) or "nothing to change"


@admin.action(description="Re-queue for the dialer (pending, due now, attempts reset)", permissions=["change"])
def requeue_contacts(modeladmin, request, queryset):
    ids = list(queryset.order_by("pk").values_list("pk", flat=True))
    if len(ids) <= jobs.CHUNK:
        modeladmin.message_user(request, f"Contacts: {_summary_text(services.requeue_contacts(ids))}")
        return None
    return redirect("campaigns:job", token=start("contacts_requeue", ids, request.user))


@admin.action(description="Delete selected contacts", permissions=["delete"])
def delete_selected(modeladmin, request, queryset):
    """Django's own delete (with its confirmation page) for a page of contacts; a larger selection
    is deleted chunk by chunk by a job that asks first."""
    ids = list(queryset.order_by("pk").values_list("pk", flat=True))
    if len(ids) <= jobs.CHUNK:
        return django_delete_selected(modeladmin, request, queryset)
    messages.info(request, f"{len(ids)} contacts selected: they are deleted in chunks of {jobs.CHUNK}.")
    return redirect("campaigns:job", token=start("contacts_delete", ids, request.user))
