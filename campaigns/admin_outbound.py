"""Admin for outbound: trunks (registration status and last error shown), per-campaign dialer
settings, contacts (CSV import) and the do-not-call list."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from aioptions.inputs import InputError

from . import trunks
from .models import DoNotCall, Trunk


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
