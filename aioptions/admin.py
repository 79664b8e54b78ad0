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
        """Route the write through services so it is validated, recorded and broadcast."""
        cd = form.cleaned_data
        llm_provider, _, llm_model = cd["llm"].partition(":")
        voice_provider, _, voice_id = cd["voice"].partition(":")
        try:
            services.update_llm(provider=llm_provider, model=llm_model, user=request.user, source="admin")
            services.update_tts_voice(provider=voice_provider, voice_id=voice_id, user=request.user,
                                      source="admin")
            services.update_turn(eot_threshold=cd["eot_threshold"], eager_eot_threshold=cd["eager_eot_threshold"],
                                 eot_timeout_ms=cd["eot_timeout_ms"], user=request.user, source="admin")
        except services.ValidationError as exc:
            messages.error(request, str(exc))
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
