"""Admin for the AI config singleton (writes go through services), its history, API tokens."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse

from . import catalog, services
from .models import AIConfig, AIConfigChange, ApiToken


def llm_choices() -> list:
    return [(p.label, [(f"{m.provider}:{m.id}", m.label) for m in catalog.llm_models(p.id) if not m.retired])
            for p in catalog.providers("llm")]


class AIConfigForm(forms.ModelForm):
    llm = forms.ChoiceField(label="LLM", choices=llm_choices)
    voice = forms.ChoiceField(label="Default voice", choices=catalog.tts_voice_choices)

    class Meta:
        model = AIConfig
        fields = ["eot_threshold", "eager_eot_threshold", "eot_timeout_ms"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance and self.instance.pk:
            self.fields["llm"].initial = f"{self.instance.llm_provider}:{self.instance.llm_model}"
            self.fields["voice"].initial = f"{self.instance.tts_provider}:{self.instance.tts_voice_id}"

    def config_parts(self) -> dict:
        """The form as ``services.update_config`` arguments (the same shape the API posts)."""
        cd = self.cleaned_data
        llm_provider, _, llm_model = cd.get("llm", "").partition(":")
        voice_provider, _, voice_id = cd.get("voice", "").partition(":")
        return {"llm": {"provider": llm_provider, "model": llm_model},
                "tts": {"provider": voice_provider, "voice_id": voice_id},
                "turn": {k: cd.get(k) for k in ("eot_threshold", "eager_eot_threshold", "eot_timeout_ms")}}

    _FIELD_OF = {"llm": "llm", "tts": "voice", "turn": None}

    def clean(self):
        """Ask the service whether it would accept this, so a refusal shows on the form instead of
        after an admin "changed successfully" (the service checks again inside its lock)."""
        cleaned = super().clean()
        if not self.errors:
            try:
                services.check_config(**self.config_parts())
            except services.ValidationError as exc:
                part, _, rest = (exc.field or "").partition(".")
                field = self._FIELD_OF.get(part) or (rest if rest in self.fields else None)
                self.add_error(field, str(exc))
        return cleaned


@admin.register(AIConfig)
class AIConfigAdmin(admin.ModelAdmin):
    form = AIConfigForm
    list_display = ("__str__", "eot_threshold", "eager_eot_threshold", "eot_timeout_ms", "updated_at", "updated_by")
    readonly_fields = ("version", "updated_at", "updated_by")

    def has_add_permission(self, request):
        return not AIConfig.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        obj, _ = AIConfig.objects.get_or_create(pk=1)
        return HttpResponseRedirect(reverse("admin:aioptions_aiconfig_change", args=[obj.pk]))

    def save_model(self, request, obj, form, change):
        """The same write as the API and the page: ``services.update_config`` validates every part
        inside the row lock and saves all of it atomically (one version, history, broadcast)."""
        try:
            services.update_config(**form.config_parts(), user=request.user, source="admin")
        except services.ValidationError as exc:  # changed by someone else since the form was checked
            messages.error(request, f"Not saved: {exc}")
        obj.refresh_from_db()


@admin.register(AIConfigChange)
class AIConfigChangeAdmin(admin.ModelAdmin):
    list_display = ("changed_at", "user", "source", "target", "field", "old_value", "new_value")
    list_filter = ("source", "target", "field")
    date_hierarchy = "changed_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "name", "created_at", "last_used_at")
    readonly_fields = ("key_hash", "created_at", "last_used_at")
    fields = ("user", "name", "key_hash", "created_at", "last_used_at")

    def has_add_permission(self, request):
        return False  # tokens are issued by `manage.py create_api_token`, which prints them once
