"""Admin: calls (with a recording player and their turns; deleting many is a job with progress), SIP
accounts (password -> HA1 only; changes apply to running bridges within seconds), bridge nodes
(read-only: the bridges write them)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from campaigns import bulk_actions

from . import services
from .models import BridgeNode, Call, SipAccount, Turn

# issue 20: deleting many calls (rows, turns, tool calls, recording files) is a job with progress
bulk_actions.register_op("calls_delete", bulk_actions.Op(
    "Delete calls", "calls", services.delete_calls, "telephony.delete_call", "admin:telephony_call_changelist",
    "Delete {total} calls with their turns and recordings? Calls still in progress are kept.",
    {"recordings": "recording files removed"}))


class TurnInline(admin.TabularInline):
    model = Turn
    extra = 0
    can_delete = False
    fields = ("index", "user_text", "agent_text", "barge_in", "eager", "eot_received_ms", "llm_first_token_ms",
              "tts_first_audio_ms", "mouth_to_ear_ms", "errors")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Call)
class CallAdmin(admin.ModelAdmin):
    list_display = ("id", "call_page", "started_at", "campaign", "caller_uri", "codec", "duration", "end_reason",
                    "turns_count", "mouth_to_ear_p50_ms", "packets_in", "packets_out", "packets_lost")
    list_filter = ("end_reason", "codec", "campaign", "bridge_node")
    search_fields = ("caller_uri", "sip_call_id", "dialed")
    readonly_fields = ("call_page", "player") + tuple(f.name for f in Call._meta.fields)
    inlines = [TurnInline]
    actions = (bulk_actions.delete_action("calls_delete"),)

    def delete_queryset(self, request, queryset) -> None:
        bulk_actions.delete_rows("calls_delete", request, queryset)

    @admin.display(description="Duration (s)")
    def duration(self, obj: Call):
        d = obj.duration_s
        return f"{d:.1f}" if d is not None else "-"

    @admin.display(description="Call page")
    def call_page(self, obj: Call):
        """The call page (waveform, aligned transcript, latency per turn) for this call."""
        url = reverse("call-detail", args=[obj.pk])
        return format_html('<a href="{}">Open the call page</a>', url)

    @admin.display(description="Recording")
    def player(self, obj: Call):
        if not obj.recording:
            return "-"
        url = reverse("telephony:recording", args=[obj.pk])
        return format_html('<audio controls preload="none" src="{}"></audio> <a href="{}">download</a>', url, url)

    def has_add_permission(self, request):
        return False


class SipAccountForm(forms.ModelForm):
    password = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False,
                               help_text="Stored only as HA1 = MD5(user:realm:password). Leave empty to keep.")

    class Meta:
        model = SipAccount
        fields = ("username", "realm", "active")
        help_texts = {"active": "Untick to disable: the account fails auth at once, and the bridge stays closed "
                                "(open mode needs no account at all)."}

    def clean(self):
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("password"):
            self.add_error("password", "a new account needs a password")
        return cleaned

    def save(self, commit=True):
        obj = super().save(commit=False)
        if self.cleaned_data.get("password"):
            obj.set_password(self.cleaned_data["password"])
        if commit:
            obj.save()
        return obj


@admin.register(SipAccount)
class SipAccountAdmin(admin.ModelAdmin):
    form = SipAccountForm
    list_display = ("username", "realm", "active", "created_at", "updated_at")
    list_filter = ("active",)


@admin.register(BridgeNode)
class BridgeNodeAdmin(admin.ModelAdmin):
    """What each bridge process registered: live ones heartbeat every 2 s; a stopped_at without a
    clean stop means another bridge judged it dead and finalised its calls (bridge lost)."""

    list_display = ("name", "host", "sip_port", "advertised", "pid", "started_at", "heartbeat_at", "stopped_at")
    readonly_fields = list_display + ("hostname",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


from .actions.admin import WebhookDeliveryAdmin  # noqa: E402,F401  (issue 16: the delivery log)
