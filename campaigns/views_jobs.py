"""The progress page of a bulk job (issue 20), staff only: /campaigns/jobs/<token>/ shows it, and
its partial POSTs /step/ (htmx, on load) to run the next chunk until the job ends; without
JavaScript a Continue button does the same. A job is its owner's, and every step re-checks the
permission the action needed, so a revoked permission stops a running job."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from . import bulk_actions, jobs


def _job(request, token: str) -> dict:
    try:
        st = jobs.state(token, request.user.pk)
        meta = bulk_actions.describe(st)  # only bulk-action jobs: the import has its own page
    except jobs.JobNotFound:
        raise Http404("no such job") from None
    if not request.user.has_perm(st["perm"]):
        raise PermissionDenied
    return {"job": st, "meta": meta, "token": token}


@staff_member_required
def job_page(request, token: str):
    context = _job(request, token)
    context.update(admin.site.each_context(request), title=context["meta"]["label"])
    return TemplateResponse(request, "campaigns/job.html", context)


@staff_member_required
@require_POST
def job_step(request, token: str):
    """Run the next chunk (the first one only with confirm=1 when the job asks first); htmx gets
    the partial, a plain form the page."""
    _job(request, token)
    st = jobs.step(token, request.user.pk, confirm=request.POST.get("confirm") == "1")
    if not request.htmx:
        return redirect("campaigns:job", token=token)
    return TemplateResponse(request, "campaigns/_job.html",
                            {"job": st, "meta": bulk_actions.describe(st), "token": token})


@staff_member_required
@require_POST
def job_cancel(request, token: str):
    _job(request, token)
    jobs.cancel(token, request.user.pk)
    return redirect("campaigns:job", token=token)
