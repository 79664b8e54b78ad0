"""Reads for the call page: a call's tool calls grouped by turn, and its webhook deliveries."""

from __future__ import annotations

from collections import defaultdict


def tool_calls_by_turn(call_id: int) -> dict[int, list]:
    """{turn index: [ToolCall, ...]} in the order the model made them (one query)."""
    from telephony.models import ToolCall

    out: dict[int, list] = defaultdict(list)
    for tc in ToolCall.objects.filter(turn__call_id=call_id).select_related("turn").order_by("turn__index", "position"):
        out[tc.turn.index].append(tc)
    return dict(out)


def webhooks_of(call_id: int) -> list:
    from telephony.models import WebhookDelivery

    return list(WebhookDelivery.objects.filter(call_id=call_id).order_by("created_at"))
