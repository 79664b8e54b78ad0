"""Latency dashboard pages (staff only): /calls/, /calls/<id>/, /calls/<id>/live/."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404
from django.shortcuts import render
from django.utils.safestring import mark_safe

from aioptions.inputs import PK_MAX

from .actions.selectors import tool_calls_by_turn
from .dashboard import callpage, selectors, svg


def _call_or_404(call_id: int):
    """The call and its turns; ids beyond any database's range are simply not found."""
    call, turns = selectors.call_detail(call_id) if 1 <= call_id <= PK_MAX else (None, [])
    if call is None:
        raise Http404("no such call")
    return call, turns


@staff_member_required
def calls(request):
    f = selectors.Filters.from_query(request.GET)
    stats = selectors.stage_stats(f)
    ctx = {"filters": f, "stats": stats, "chart": mark_safe(svg.bar_chart(stats)),
           "calls": selectors.recent_calls(f), "choices": selectors.filter_choices()}
    if request.htmx:
        return render(request, "telephony/_calls_body.html", ctx)
    ctx["bridges"] = selectors.bridge_nodes()  # issue 17: every node of the fleet
    return render(request, "telephony/calls.html", ctx)


@staff_member_required
def call_detail(request, call_id: int):
    """The call page: recording with a two-lane waveform, the transcript aligned to it, each turn's
    latency bar and fault markers. A sync view, so the WAV analysis runs in a worker thread."""
    call, turns = _call_or_404(call_id)
    ctx = {"call": call, "turns": turns, "chart": mark_safe(svg.waterfall(turns)) if turns else ""}
    ctx.update(callpage.call_page(call, turns))
    tools = tool_calls_by_turn(call.pk)  # issue 16: each turn's tool calls, under its agent line
    for view in ctx["turn_views"]:
        view.tool_calls = tools.get(view.turn.index, [])
    return render(request, "telephony/call_detail.html", ctx)


@staff_member_required
def call_live(request, call_id: int):
    call, turns = _call_or_404(call_id)
    return render(request, "telephony/call_live.html", {"call": call, "turns": turns})
