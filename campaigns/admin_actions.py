"""Admin for what the agent can do (issue 16): HTTP tools and per-campaign actions (built-ins,
transfer targets, webhook, extraction fields). Both forms run the same validation as the API
(campaigns.tools), so a schema typo or a private URL is refused when saved."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from aioptions.inputs import InputError

from . import tools
from .models import CampaignActions, CampaignTool


def _apply(form: forms.ModelForm, cleaned: dict, check) -> dict:
    try:
        return check()
    except InputError as exc:
        field = (exc.field or "").split(".")[0]
        form.add_error(field if field in form.fields else None, str(exc))
        return cleaned


class CampaignToolForm(forms.ModelForm):
    class Meta:
        model = CampaignTool
        fields = ("campaign", "name", "description", "parameters", "method", "url", "headers", "timeout_s",
                  "enabled")

    def clean(self) -> dict:
        cleaned = super().clean()
        data = {k: cleaned[k] for k in tools.TOOL_FIELDS if k in cleaned and cleaned[k] is not None}
        return {**cleaned, **_apply(self, cleaned, lambda: tools.clean_tool(data))}


@admin.register(CampaignTool)
class CampaignToolAdmin(admin.ModelAdmin):
    form = CampaignToolForm
    list_display = ("name", "campaign", "method", "url", "timeout_s", "enabled")
    list_filter = ("campaign", "enabled")


class CampaignActionsForm(forms.ModelForm):
    class Meta:
        model = CampaignActions
        fields = ("campaign", "builtins", "transfer_targets", "webhook_url", "extraction_schema")

    def clean(self) -> dict:
        cleaned = super().clean()
        campaign = cleaned.get("campaign")
        if campaign is None:
            return cleaned
        data = {k: cleaned[k] for k in tools.ACTION_FIELDS if k in cleaned and cleaned[k] is not None}
        return {**cleaned, **_apply(self, cleaned, lambda: tools.clean_actions(data, campaign.pk))}


@admin.register(CampaignActions)
class CampaignActionsAdmin(admin.ModelAdmin):
    """The signing secret is shown only as 'set' (it is in the environment or the database); the
    API's rotate endpoint returns a new one once."""

    form = CampaignActionsForm
    list_display = ("campaign", "webhook_url", "secret_state")
    readonly_fields = ("secret_state",)

    @admin.display(description="signing secret")
    def secret_state(self, obj: CampaignActions) -> str:
        if obj.pk and tools.os.environ.get(f"TALKY_SIGNING_SECRET_{obj.campaign_id}"):
            return "from the environment"
        return "set (rotate through the API to read a new one)" if obj.signing_secret else "generated when saved"

    def save_model(self, request, obj, form, change) -> None:
        if not obj.signing_secret:
            obj.signing_secret = tools.secrets.token_hex(32)
        super().save_model(request, obj, form, change)
