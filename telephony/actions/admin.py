"""Admin: the webhook delivery log, and redelivery by hand (the row goes back to pending, due now).
A ``preparing`` row has no payload yet (its call just ended, or its process died and the worker
completes it after the grace period): redelivery leaves it alone rather than send an empty body."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from telephony.models import ToolCall, WebhookDelivery


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("event_id", "call", "url", "status", "attempts", "last_status", "next_at", "delivered_at",
                    "created_at")
    list_filter = ("status",)
    readonly_fields = ("event_id", "call", "campaign", "url", "payload", "attempts", "last_status", "last_error",
                       "claimed_at", "delivered_at", "created_at")
    actions = ("redeliver",)

    @admin.action(description="Deliver again now")
    def redeliver(self, request, queryset) -> None:
        S = WebhookDelivery.Status
        n = queryset.exclude(status=S.PREPARING).update(status=S.PENDING, next_at=timezone.now(), claimed_at=None)
        # one more attempt at least; the give-up age still counts from the call
        preparing = queryset.filter(status=S.PREPARING).count()
        note = f"; {preparing} still preparing (sent once their payload is built)" if preparing else ""
        self.message_user(request, f"{n} deliveries queued again{note}")


@admin.register(ToolCall)
class ToolCallAdmin(admin.ModelAdmin):
    list_display = ("name", "turn", "status", "latency_ms", "created_at")
    list_filter = ("status", "name")
    readonly_fields = ("turn", "position", "name", "arguments", "status", "result_excerpt", "latency_ms")
