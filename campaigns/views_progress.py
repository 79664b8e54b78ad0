"""The dialer's live progress page (staff only): /campaigns/<id>/progress/ and the partial it
polls every 2 s (htmx) at /campaigns/<id>/progress/partial/."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from aioptions.inputs import PK_MAX

from . import selectors


def _progress_or_404(campaign_id: int) -> dict:
    data = selectors.dialer_progress(campaign_id, now=timezone.now()) if 1 <= campaign_id <= PK_MAX else None
    if data is None:
        raise Http404("no such campaign")
    return data


@staff_member_required
def progress_page(request, campaign_id: int):
    return render(request, "campaigns/progress.html", {"p": _progress_or_404(campaign_id)})


@staff_member_required
def progress_partial(request, campaign_id: int):
    return render(request, "campaigns/_progress.html", {"p": _progress_or_404(campaign_id)})
