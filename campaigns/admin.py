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

    def pairs(self) -> dict[str, tuple[str, str]]:
        """The voice and LLM dropdowns as ``services.save_campaign`` takes them ("" = the global one)."""
        cd = self.cleaned_data
        voice_provider, _, voice_id = (cd.get("voice") or "").partition(":")
        llm_provider, _, llm_model = (cd.get("llm") or "").partition(":")
        return {"voice": (voice_provider, voice_id), "llm": (llm_provider, llm_model)}

    def clean(self):
        """Ask the service what it would refuse, so it shows on the field (it checks again in its lock)."""
        cleaned = super().clean()
        try:
            services.check_campaign(campaign_id=self.instance.pk, is_default=bool(cleaned.get("is_default")),
                                    **self.pairs())
        except ValidationError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc))
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
        """The same kind of write as the API's: ``services.save_campaign`` checks voice, LLM and the
        default rule inside the row lock and saves the campaign, history and broadcast at once."""
        fields = {k: form.cleaned_data[k] for k in services.CAMPAIGN_FIELDS if k in form.cleaned_data}
        try:
            saved = services.save_campaign(campaign_id=obj.pk if change else None, fields=fields, **form.pairs(),
                                           user=request.user, source="admin")
        except ValidationError as exc:  # changed by someone else since the form was checked
            if not change:
                raise  # nothing to show a new row on; the database would have refused it as well
            messages.error(request, f"Not saved: {exc}")
            obj.refresh_from_db()
            return
        obj.pk = saved.pk  # a new row: the admin's inlines and log entry need its key
        obj._state.adding = False
        obj.refresh_from_db()


from . import admin_actions  # noqa: E402,F401,I001  (tools, transfer targets, webhook)
from . import admin_outbound  # noqa: E402,F401  (trunks, dialer, contacts, do-not-call)
