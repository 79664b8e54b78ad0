"""Admin for outbound: trunks (registration status and last error shown), per-campaign dialer
settings, contacts (CSV import) and the do-not-call list."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from aioptions.inputs import InputError

from . import bulk_actions, contacts, dialer, import_jobs, trunks
from .admin import CampaignAdmin
from .models import Campaign, Contact, DialerSettings, DoNotCall, Trunk
from .phones import BadNumber, to_e164

MAX_IMPORT_BYTES = 5_000_000


class TrunkForm(forms.ModelForm):
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                               help_text="digest password; leave empty to keep the current one")

    class Meta:
        model = Trunk
        exclude = ["registration_status", "registration_error", "registered_until"]

    def clean(self):
        cleaned = super().clean()
        data = {k: cleaned[k] for k in trunks.FIELDS if k in cleaned and cleaned[k] is not None}
        if not data.get("password"):
            data.pop("password", None)
            cleaned["password"] = self.instance.password if self.instance.pk else ""
        try:
            values = trunks.clean(data, partial=True)
        except InputError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc))
            return cleaned
        cleaned.update(values)
        return cleaned


@admin.register(Trunk)
class TrunkAdmin(admin.ModelAdmin):
    form = TrunkForm
    list_display = ("name", "host", "port", "active", "register", "registration_status", "registration_error",
                    "ip_auth", "max_concurrent", "calls_per_second")
    readonly_fields = ("registration_status", "registration_error", "registered_until")
    fieldsets = (
        (None, {"fields": ("name", "active", "host", "port", "transport")}),
        ("Authentication", {"fields": ("username", "password", "register", "register_expires",
                                       "registration_status", "registration_error", "registered_until",
                                       "ip_auth", "inbound_ips")}),
        ("Caller ID and numbers", {"fields": ("from_user", "from_display", "p_asserted_identity",
                                              "number_format", "dial_prefix")}),
        ("Limits (toll-fraud guard)", {"fields": ("allowed_prefixes", "max_concurrent", "calls_per_second")}),
    )


@admin.register(DoNotCall)
class DoNotCallAdmin(admin.ModelAdmin):
    list_display = ("phone", "reason", "created_at")
    search_fields = ("phone",)


# --- contacts, do-not-call, dialer settings -----------------------------------------------------
class ContactImportForm(forms.Form):
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.all())
    file = forms.FileField(help_text="UTF-8 CSV with a header line")
    default_region = forms.CharField(max_length=2, required=False, help_text="e.g. US, for numbers without +")


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("phone", "name", "campaign", "state", "attempts", "last_outcome", "next_attempt_at", "timezone")
    list_filter = ("campaign", "state", "last_outcome")
    search_fields = ("phone", "name")
    readonly_fields = ("attempts", "last_outcome", "last_attempt_at", "claimed_by")
    change_list_template = "admin/campaigns/contact/change_list.html"
    actions = (bulk_actions.requeue_contacts, bulk_actions.delete_selected)  # large selections: a job with progress

    def delete_queryset(self, request, queryset) -> None:
        bulk_actions.delete_rows("contacts_delete", request, queryset)

    def get_urls(self):
        extra = [path("import/", self.admin_site.admin_view(self.import_view), name="campaigns_contact_import"),
                 path("import/<str:token>/", self.admin_site.admin_view(self.import_progress_view),
                      name="campaigns_contact_import_progress"),
                 path("import/<str:token>/step/", self.admin_site.admin_view(self.import_step_view),
                      name="campaigns_contact_import_step")]
        return extra + super().get_urls()

    def import_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        result = None
        form = ContactImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > MAX_IMPORT_BYTES:
                form.add_error("file", f"at most {MAX_IMPORT_BYTES // 1_000_000} MB")
            else:
                try:
                    text = upload.read().decode("utf-8-sig")
                    rows = contacts.parse_csv(text)
                    if len(rows) > import_jobs.CHUNK_ROWS:  # issue 20: large files in chunks, with progress
                        token = import_jobs.start(text, len(rows), campaign_id=form.cleaned_data["campaign"].pk,
                                                  default_region=form.cleaned_data["default_region"],
                                                  user_id=request.user.pk)
                        return redirect("admin:campaigns_contact_import_progress", token=token)
                    result = contacts.import_contacts(form.cleaned_data["campaign"].pk, rows,
                                                      default_region=form.cleaned_data["default_region"])
                    messages.info(request, f"{result['imported']} contact(s) imported")
                except UnicodeDecodeError:
                    form.add_error("file", "the file is not UTF-8 text")
                except InputError as exc:
                    form.add_error("file", str(exc))
        context = {**self.admin_site.each_context(request), "form": form, "result": result,
                   "title": "Import contacts"}
        return TemplateResponse(request, "admin/campaigns/contact/import.html", context)

    def _job(self, request, token: str) -> dict:
        if not self.has_add_permission(request):
            raise PermissionDenied
        try:
            return import_jobs.state(token, request.user.pk)
        except import_jobs.JobNotFound:
            raise Http404("no such import") from None

    def import_progress_view(self, request, token: str):
        """The progress page (GET only reads): its partial drives the import by HTMX polls, and
        without JavaScript a Continue button posts each step."""
        job = self._job(request, token)
        context = {**self.admin_site.each_context(request), "job": job, "token": token,
                   "title": "Importing contacts"}
        return TemplateResponse(request, "admin/campaigns/contact/import_progress.html", context)

    def import_step_view(self, request, token: str):
        """POST: import the next chunk; HTMX gets the progress partial, a plain form the page."""
        self._job(request, token)
        if request.method != "POST":
            return redirect("admin:campaigns_contact_import_progress", token=token)
        job = import_jobs.step(token, request.user.pk)
        if not request.htmx:
            return redirect("admin:campaigns_contact_import_progress", token=token)
        return TemplateResponse(request, "admin/campaigns/contact/_import_progress.html",
                                {"job": job, "token": token})


class DoNotCallForm(forms.ModelForm):
    class Meta:
        model = DoNotCall
        fields = ["phone", "reason"]

    def clean_phone(self):
        try:
            return to_e164(self.cleaned_data["phone"])
        except BadNumber as exc:
            raise forms.ValidationError(str(exc)) from None


DoNotCallAdmin.form = DoNotCallForm


class DialerSettingsInline(admin.StackedInline):
    model = DialerSettings
    can_delete = False
    extra = 0
    max_num = 1
    fields = ("trunk", "did", "state", "timezone", "window_days", "window_start", "window_end", "max_concurrent",
              "calls_per_minute", "max_attempts", "retry_delays", "ring_timeout_s", "amd_mode", "voicemail_message")
    readonly_fields = ("state",)


CampaignAdmin.inlines = [*CampaignAdmin.inlines, DialerSettingsInline]


def _dialer_action(action: str, label: str):
    @admin.action(description=label)
    def run(modeladmin, request, queryset):
        for campaign in queryset:
            try:
                state = dialer.set_state(campaign.pk, action)["state"]
                messages.info(request, f"{campaign.name}: dialer {state}")
            except InputError as exc:
                messages.error(request, f"{campaign.name}: {exc}")

    run.__name__ = f"{action}_dialer"
    return run


CampaignAdmin.actions = [*(CampaignAdmin.actions or []), _dialer_action("start", "Start the dialer"),
                         _dialer_action("pause", "Pause the dialer"), _dialer_action("stop", "Stop the dialer")]
