"""Campaign admin: the voice is picked from the catalog (grouped by provider, with gender and
description) — the primary way an operator assigns voices."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from aioptions import catalog
from aioptions.admin import llm_choices
from aioptions.services import ValidationError

from . import services
from .models import Campaign


def voice_choices() -> list:
    return [("", "— Global default voice —"), *catalog.tts_voice_choices()]


def campaign_llm_choices() -> list:
    return [("", "— Global LLM —"), *llm_choices()]


class CampaignForm(forms.ModelForm):
    voice = forms.ChoiceField(choices=voice_choices, required=False,
                              help_text="Empty = the global voice from AI options")
    llm = forms.ChoiceField(label="LLM override", choices=campaign_llm_choices, required=False)

    class Meta:
        model = Campaign
        fields = ["name", "extension", "active", "is_default", "system_prompt", "greeting", "preview_text"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        inst = self.instance
        if inst and inst.voice_id:
            self.fields["voice"].initial = f"{inst.voice_provider}:{inst.voice_id}"
        if inst and inst.llm_model:
            self.fields["llm"].initial = f"{inst.llm_provider}:{inst.llm_model}"

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("is_default"):
            others = Campaign.objects.filter(is_default=True).exclude(pk=self.instance.pk or 0)
            if others.exists():
                self.add_error("is_default", f"{others.first()} is already the default campaign")
        return cleaned


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    list_display = ("name", "extension", "voice_display", "llm_display", "active", "is_default", "progress_link")
    list_filter = ("active", "voice_provider")
    search_fields = ("name", "extension")
    fieldsets = (
        (None, {"fields": ("name", "extension", "active", "is_default")}),
        ("Voice and model", {"fields": ("voice", "llm")}),
        ("Conversation", {"fields": ("greeting", "system_prompt", "preview_text")}),
    )

    @admin.display(description="Voice")
    def voice_display(self, obj: Campaign) -> str:
        v = obj.voice
        return f"{v.name} ({v.provider})" if v else "global"

    @admin.display(description="Dialer")
    def progress_link(self, obj: Campaign) -> str:
        return format_html('<a href="{}">progress</a>', reverse("campaigns:progress", args=[obj.pk]))

    @admin.display(description="LLM")
    def llm_display(self, obj: Campaign) -> str:
        return f"{obj.llm_provider}/{obj.llm_model}" if obj.llm_model else "global"

    def save_model(self, request, obj, form, change):
        llm = form.cleaned_data.get("llm") or ""
        obj.llm_provider, _, obj.llm_model = llm.partition(":")
        if not change:  # a new row needs its voice before the check constraint sees it
            provider, _, voice_id = (form.cleaned_data.get("voice") or "").partition(":")
            obj.voice_provider, obj.voice_id = provider, voice_id
        super().save_model(request, obj, form, change)
        if change:
            provider, _, voice_id = (form.cleaned_data.get("voice") or "").partition(":")
            try:  # validated, recorded in the AI change history, broadcast to open pages
                services.set_campaign_voice(campaign_id=obj.pk, provider=provider, voice_id=voice_id,
                                            user=request.user, source="admin")
            except ValidationError as exc:
                messages.error(request, str(exc))
from . import admin_actions  # noqa: E402,F401,I001  (tools, transfer targets, webhook)
from . import admin_outbound  # noqa: E402,F401  (trunks, dialer, contacts, do-not-call)
