"""Outreach campaigns: prompt, greeting, the extension that routes calls to it, and its voice."""

from __future__ import annotations

import datetime

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from aioptions import catalog

extension_validator = RegexValidator(
    r"^[A-Za-z0-9_.+-]{1,32}$", "Use 1-32 letters, digits or . _ + - (the SIP user part)."
)

DEFAULT_PREVIEW_TEXT = "Hi, this is a quick call about your appointment. Is now a good time to talk?"


class Campaign(models.Model):
    name = models.CharField(max_length=120)
    extension = models.CharField(
        max_length=32, unique=True, validators=[extension_validator],
        help_text="The dialed SIP user part that routes a call here, e.g. 100",
    )
    system_prompt = models.TextField(
        default="You are a friendly, concise phone agent. Keep replies to one or two short sentences."
    )
    greeting = models.TextField(default="Hello! Thanks for calling. How can I help you today?")
    voice_provider = models.CharField(max_length=32, blank=True, default="",
                                      help_text="Empty = use the global voice")
    voice_id = models.CharField(max_length=128, blank=True, default="")
    llm_provider = models.CharField(max_length=32, blank=True, default="",
                                    help_text="Empty = use the global LLM")
    llm_model = models.CharField(max_length=128, blank=True, default="")
    preview_text = models.CharField(max_length=200, blank=True, default="",
                                    help_text="Sample sentence for voice previews")
    active = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False,
                                     help_text="Takes calls whose extension matches no campaign")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["extension"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True),
                                    name="one_default_campaign"),
            models.CheckConstraint(
                condition=(Q(voice_provider="") & Q(voice_id="")) | (~Q(voice_provider="") & ~Q(voice_id="")),
                name="voice_provider_and_id_together",
            ),
            models.CheckConstraint(
                condition=(Q(llm_provider="") & Q(llm_model="")) | (~Q(llm_provider="") & ~Q(llm_model="")),
                name="llm_provider_and_model_together",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (ext {self.extension})"

    @property
    def voice(self) -> catalog.Voice | None:
        return catalog.get_voice(self.voice_id) if self.voice_id else None

    @property
    def effective_preview_text(self) -> str:
        return self.preview_text or DEFAULT_PREVIEW_TEXT


# --- outbound (issue 15): trunks, dialer settings, contacts, do-not-call --------------------------
def default_retry_delays() -> dict:
    """Seconds before the next attempt, by the last outcome (absent or null: never retry)."""
    return {"busy": 600, "no_answer": 7200, "failed": 1800}


class Trunk(models.Model):
    """A SIP carrier account the bridge dials out through (UDP).

    Money flows through a trunk, so outbound is denied unless the destination (E.164) starts with
    one of ``allowed_prefixes``: empty = no outbound call at all (the toll-fraud guard). The
    password is kept in clear because a digest *client* needs it (HA1 needs it per realm); it is
    never returned by the API or shown in the admin after saving.
    """

    class NumberFormat(models.TextChoices):
        E164 = "e164", "E.164 with + (+15551234567)"
        DIGITS = "digits", "E.164 digits without + (15551234567)"

    class Registration(models.TextChoices):
        OFF = "", "not registering"
        REGISTERING = "registering", "registering"
        REGISTERED = "registered", "registered"
        FAILED = "failed", "failed"

    name = models.CharField(max_length=80, unique=True)
    host = models.CharField(max_length=253, help_text="IP address or host name (resolved off the event loop)")
    port = models.PositiveIntegerField(default=5060)
    transport = models.CharField(max_length=8, default="udp", choices=[("udp", "UDP")])
    username = models.CharField(max_length=128, blank=True, default="", help_text="digest username (if any)")
    password = models.CharField(max_length=128, blank=True, default="")
    register = models.BooleanField(default=False, help_text="REGISTER to the trunk (refreshed before expiry)")
    register_expires = models.PositiveIntegerField(default=600)
    ip_auth = models.BooleanField(default=False, help_text="IP authentication: calls from the trunk's addresses "
                                                          "are trusted (no digest, no per-source limits)")
    inbound_ips = models.CharField(max_length=255, blank=True, default="",
                                   help_text="comma list of the trunk's IPs (empty = the host if it is an IP)")
    from_user = models.CharField(max_length=64, blank=True, default="", help_text="caller ID user part")
    from_display = models.CharField(max_length=64, blank=True, default="")
    p_asserted_identity = models.CharField(max_length=255, blank=True, default="",
                                           help_text='e.g. <sip:+15550001111@carrier.example> (empty: none)')
    number_format = models.CharField(max_length=8, choices=NumberFormat.choices, default=NumberFormat.E164)
    dial_prefix = models.CharField(max_length=8, blank=True, default="", help_text="put before every number")
    max_concurrent = models.PositiveIntegerField(default=10)
    calls_per_second = models.FloatField(default=1.0)
    allowed_prefixes = models.TextField(blank=True, default="",
                                        help_text="E.164 prefixes that may be dialled, one per line or comma "
                                                  "separated (+1555, +4420). Empty = no outbound at all")
    active = models.BooleanField(default=True)
    registration_status = models.CharField(max_length=12, choices=Registration.choices, blank=True, default="")
    registration_error = models.CharField(max_length=255, blank=True, default="")
    registered_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"

    @property
    def prefixes(self) -> list[str]:
        raw = self.allowed_prefixes.replace("\n", ",").replace(" ", "")
        return [p for p in raw.split(",") if p]

    def allows(self, e164: str) -> bool:
        return any(e164.startswith(p) for p in self.prefixes)

    def user_part(self, e164: str) -> str:
        number = e164 if self.number_format == self.NumberFormat.E164 else e164.lstrip("+")
        return f"{self.dial_prefix}{number}"


class DialerSettings(models.Model):
    """Per-campaign outbound settings (one row per campaign, created on first use)."""

    class State(models.TextChoices):
        STOPPED = "stopped", "stopped"
        RUNNING = "running", "running"
        PAUSED = "paused", "paused"

    campaign = models.OneToOneField(Campaign, on_delete=models.CASCADE, related_name="dialer")
    trunk = models.ForeignKey(Trunk, null=True, blank=True, on_delete=models.SET_NULL, related_name="campaigns")
    did = models.CharField(max_length=32, blank=True, default="", db_index=True,
                           help_text="inbound: calls to this number (E.164) reach this campaign")
    state = models.CharField(max_length=8, choices=State.choices, default=State.STOPPED)
    timezone = models.CharField(max_length=64, default="UTC", help_text="default for contacts without one")
    window_days = models.CharField(max_length=7, default="01234", help_text="weekdays, 0 = Monday")
    window_start = models.TimeField(default=datetime.time(9, 0))
    window_end = models.TimeField(default=datetime.time(20, 0))
    max_concurrent = models.PositiveIntegerField(default=2)
    calls_per_minute = models.PositiveIntegerField(default=10)
    max_attempts = models.PositiveIntegerField(default=3)
    retry_delays = models.JSONField(default=default_retry_delays, blank=True)
    ring_timeout_s = models.PositiveIntegerField(default=30)
    amd_mode = models.CharField(max_length=8, default="off", choices=[
        ("off", "off: the agent talks to whoever answers"), ("hangup", "machine: hang up"),
        ("message", "machine: leave the voicemail message after the beep")],
        help_text="answering-machine detection on the first seconds after the answer")
    voicemail_message = models.TextField(blank=True, default="", help_text="spoken after the beep; {variables}")

    def __str__(self) -> str:
        return f"dialer of {self.campaign_id} ({self.state})"


class Contact(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "waiting for a call"
        CALLING = "calling", "call in progress"
        DONE = "done", "reached"
        FAILED = "failed", "gave up (attempts used)"
        DNC = "dnc", "do not call"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="contacts")
    phone = models.CharField(max_length=20, help_text="E.164")
    name = models.CharField(max_length=120, blank=True, default="")
    timezone = models.CharField(max_length=64, blank=True, default="", help_text="empty: the campaign's")
    variables = models.JSONField(default=dict, blank=True, help_text='{"first_name": "Ana"} for {first_name}')
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_outcome = models.CharField(max_length=16, blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=128, blank=True, default="")
    notes = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "phone"], name="contact_phone_per_campaign")]

    def __str__(self) -> str:
        return f"{self.name or self.phone} ({self.state})"


class DoNotCall(models.Model):
    """Numbers the dialer never calls, whatever the campaign."""

    phone = models.CharField(max_length=20, unique=True, help_text="E.164")
    reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "do-not-call number"

    def __str__(self) -> str:
        return self.phone


# --- actions (issue 16): tools the model may call, transfer targets, the post-call webhook -------
BUILTIN_TOOLS = ("end_call", "transfer_call", "add_to_do_not_call", "send_dtmf")


def default_builtins() -> list:
    return ["end_call"]


class CampaignActions(models.Model):
    """Per-campaign settings of what the agent may *do* (one row, created on first use).

    ``signing_secret`` signs tool requests and webhooks (HMAC-SHA256). It is generated when the row
    is created unless ``TALKY_SIGNING_SECRET_<campaign id>`` is set in the environment, which then
    wins (so a secret can be kept out of the database). It is never logged.
    """

    campaign = models.OneToOneField(Campaign, on_delete=models.CASCADE, related_name="actions")
    signing_secret = models.CharField(max_length=128, blank=True, default="")
    builtins = models.JSONField(default=default_builtins, blank=True,
                                help_text=f"built-in tools the model may call: {', '.join(BUILTIN_TOOLS)}")
    transfer_targets = models.TextField(blank=True, default="",
                                        help_text="transfer_call may reach these (one per line): E.164 numbers "
                                                  "within the trunk's prefixes, sip: URIs, or extensions")
    webhook_url = models.CharField(max_length=500, blank=True, default="",
                                   help_text="POSTed after every call (signed); empty = no webhook")
    extraction_schema = models.JSONField(default=dict, blank=True,
                                         help_text='fields the LLM fills from the transcript, e.g. '
                                                   '{"appointment_confirmed": "boolean", "new_time": "string"}')
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "campaign actions"
        verbose_name_plural = "campaign actions"

    def __str__(self) -> str:
        return f"actions of campaign {self.campaign_id}"

    @property
    def targets(self) -> list[str]:
        return [t.strip() for t in self.transfer_targets.replace(",", "\n").splitlines() if t.strip()]


class CampaignTool(models.Model):
    """An HTTP tool: the model's arguments are sent as a JSON body, signed, to ``url``; the response
    body (bounded) goes back to the model. The URL is checked by the SSRF guard at call time too."""

    class Method(models.TextChoices):
        POST = "POST", "POST"
        PUT = "PUT", "PUT"
        PATCH = "PATCH", "PATCH"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=64, help_text="function name the model sees: letters, digits, _ and -")
    description = models.TextField(blank=True, default="", help_text="tells the model when to call it")
    parameters = models.JSONField(default=dict, blank=True, help_text="JSON schema of the arguments (an object)")
    method = models.CharField(max_length=8, choices=Method.choices, default=Method.POST)
    url = models.CharField(max_length=500)
    headers = models.JSONField(default=dict, blank=True, help_text='extra request headers {"Authorization": "..."}')
    timeout_s = models.FloatField(default=5.0)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["campaign", "name"]
        constraints = [models.UniqueConstraint(fields=["campaign", "name"], name="tool_name_per_campaign")]

    def __str__(self) -> str:
        return f"{self.name} ({self.method} {self.url})"
