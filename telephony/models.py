"""Telephony records: SIP accounts (digest auth), one Call row per call, one Turn row per turn.

Written only at call/turn boundaries (never per packet), through ``telephony.services``.
"""

from __future__ import annotations

import hashlib

from django.db import models

from campaigns.models import Campaign, Contact


class SipAccount(models.Model):
    """A softphone login. Only HA1 = MD5(username:realm:password) is stored, never the password.

    Open mode (any user/password) exists only while no account exists at all and the bridge is
    bound to loopback; a disabled (``active=False``) account fails auth but keeps the bridge
    closed. ``updated_at`` lets a running bridge notice changes cheaply (count + latest change).
    """

    username = models.CharField(max_length=64, unique=True)
    realm = models.CharField(max_length=128, default="talky")
    ha1 = models.CharField(max_length=32, help_text="MD5(username:realm:password), hex")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    def __str__(self) -> str:
        return self.username

    def set_password(self, password: str) -> None:
        self.ha1 = hashlib.md5(f"{self.username}:{self.realm}:{password}".encode()).hexdigest()


class BridgeNode(models.Model):
    """One running SIP bridge process: it owns the Call rows it created and proves it is alive by a
    heartbeat. A bridge that starts finalises only the open calls of nodes whose heartbeat stopped,
    so two bridges on one database never close each other's calls. Later the dispatcher
    destination list of the SIP edge (Kamailio) for several bridges.
    """

    name = models.CharField(max_length=128, unique=True, help_text="host-pid-random, unique per start")
    hostname = models.CharField(max_length=128, blank=True, default="",
                                help_text="machine it runs on: a bridge there whose pid is gone is dead at once")
    host = models.CharField(max_length=255, help_text="address the SIP socket is bound to")
    sip_port = models.PositiveIntegerField()
    advertised = models.CharField(max_length=64, blank=True, default="")
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # fleet (Kamailio's dispatcher list is a view over these rows: deploy/kamailio/views.sql)
    max_calls = models.PositiveIntegerField(default=100, help_text="capacity: the dispatcher's maxload")
    live_calls = models.PositiveIntegerField(default=0, help_text="calls up at the last heartbeat")
    draining = models.BooleanField(default=False,
                                   help_text="takes no new calls (OPTIONS/INVITE 503), exits when its calls end")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return self.name


class Call(models.Model):
    class EndReason(models.TextChoices):
        BYE = "bye", "caller hung up"
        AGENT = "agent", "agent hung up"
        CANCEL = "cancel", "cancelled while ringing"
        RTP_TIMEOUT = "rtp_timeout", "no media (RTP timeout)"
        SHUTDOWN = "shutdown", "bridge stopped"
        ERROR = "error", "error"
        BUSY = "busy", "rejected: busy"
        BRIDGE_LOST = "bridge_lost", "bridge lost"
        TRANSFERRED = "transferred", "transferred (REFER accepted or bridged to the target)"
        # outbound calls that never reached the agent end with their outcome
        NO_ANSWER = "no_answer", "outbound: no answer"
        REJECTED = "rejected", "outbound: rejected"
        FAILED = "failed", "outbound: failed"
        INVALID_NUMBER = "invalid_number", "outbound: invalid number"

    sip_call_id = models.CharField(max_length=255, db_index=True)
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="calls")
    caller_uri = models.CharField(max_length=255, blank=True, default="")
    dialed = models.CharField(max_length=64, blank=True, default="")
    codec = models.CharField(max_length=8, blank=True, default="")
    agent = models.CharField(max_length=32, blank=True, default="")
    bridge_node = models.ForeignKey(BridgeNode, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="calls", help_text="the bridge that carries (carried) it")
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=16, choices=EndReason.choices, blank=True, default="")
    packets_in = models.PositiveIntegerField(default=0)
    packets_out = models.PositiveIntegerField(default=0)
    packets_lost = models.PositiveIntegerField(default=0)
    packets_late = models.PositiveIntegerField(default=0)
    jitter_ms = models.FloatField(default=0.0)
    recording = models.FileField(upload_to="recordings/", blank=True, default="")
    # Summary over turns (filled when the call ends)
    turns_count = models.PositiveIntegerField(default=0)
    mouth_to_ear_p50_ms = models.FloatField(null=True, blank=True)
    mouth_to_ear_p95_ms = models.FloatField(null=True, blank=True)
    llm_model = models.CharField(max_length=128, blank=True, default="")
    voice_id = models.CharField(max_length=128, blank=True, default="")
    # outbound (issue 15): who placed it, how it ended before/at the answer, whom it was for
    direction = models.CharField(max_length=8, default="inbound", choices=[("inbound", "inbound"),
                                                                          ("outbound", "outbound")])
    outcome = models.CharField(max_length=16, blank=True, default="", help_text="outbound: answered, busy, "
                               "no_answer, rejected, failed, invalid_number, voicemail")
    sip_status = models.PositiveIntegerField(null=True, blank=True, help_text="outbound: final SIP status")
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Call {self.pk} {self.caller_uri} -> {self.dialed}"

    @property
    def duration_s(self) -> float | None:
        start = self.answered_at or self.started_at
        if not (start and self.ended_at):
            return None
        return (self.ended_at - start).total_seconds()


class Turn(models.Model):
    """One user turn and the agent's reply, with its latency waterfall (milliseconds).

    All ``*_ms`` stage fields are offsets from the moment the caller stopped speaking
    (``speech_end``, on the call's audio clock mapped to the monotonic clock), so each stage is
    >= the previous one and ``mouth_to_ear_ms`` = first reply RTP packet sent.
    """

    class Eager(models.TextChoices):
        OFF = "off", "eager EOT off"
        HIT = "hit", "speculative reply used"
        MISS = "miss", "transcript changed: restarted"
        CANCELLED = "cancelled", "turn resumed: cancelled"
        NONE = "none", "no eager event"

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    user_text = models.TextField(blank=True, default="")
    agent_text = models.TextField(blank=True, default="", help_text="As actually played")
    barge_in = models.BooleanField(default=False)
    eager = models.CharField(max_length=12, choices=Eager.choices, default=Eager.OFF)
    llm_provider = models.CharField(max_length=32, blank=True, default="")
    llm_model = models.CharField(max_length=128, blank=True, default="")
    tts_provider = models.CharField(max_length=32, blank=True, default="")
    voice_id = models.CharField(max_length=128, blank=True, default="")
    # Waterfall, ms after speech end
    eot_received_ms = models.FloatField(null=True, blank=True)
    llm_request_ms = models.FloatField(null=True, blank=True)
    llm_first_token_ms = models.FloatField(null=True, blank=True)
    tts_request_ms = models.FloatField(null=True, blank=True)
    tts_first_audio_ms = models.FloatField(null=True, blank=True)
    first_rtp_ms = models.FloatField(null=True, blank=True)
    mouth_to_ear_ms = models.FloatField(null=True, blank=True)
    llm_ttft_ms = models.FloatField(null=True, blank=True)
    tts_ttfb_ms = models.FloatField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["call", "index"]
        constraints = [models.UniqueConstraint(fields=["call", "index"], name="turn_index_per_call")]

    def __str__(self) -> str:
        return f"Turn {self.index} of call {self.call_id}"

    WATERFALL = ("eot_received_ms", "llm_request_ms", "llm_first_token_ms", "tts_request_ms",
                 "tts_first_audio_ms", "first_rtp_ms")


class ToolCall(models.Model):
    """One function call the model made during a turn (issue 16): what it asked, what came back."""

    class Status(models.TextChoices):
        OK = "ok", "ok"
        ERROR = "error", "error"
        TIMEOUT = "timeout", "timed out"
        REFUSED = "refused", "refused (not allowed)"

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="tool_calls")
    position = models.PositiveIntegerField(default=0, help_text="order within the turn")
    name = models.CharField(max_length=64)
    arguments = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices)
    result_excerpt = models.TextField(blank=True, default="", help_text="first 500 characters")
    latency_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["turn", "position"]

    def __str__(self) -> str:
        return f"{self.name} ({self.status}) in turn {self.turn_id}"


class WebhookDelivery(models.Model):
    """A post-call webhook and its delivery state, persisted so a restart resumes the retries.

    ``event_id`` travels as ``X-Talky-Delivery``: a receiver that saw it already can drop a repeat
    (a crash between the receiver's 2xx and our write is the only way to send one twice).
    ``preparing``: stored at the call's end before its payload exists (telephony.actions.webhook_prepare),
    so a crash while the payload is built loses nothing. At most one row per call."""

    class Status(models.TextChoices):
        PREPARING = "preparing", "preparing (payload not built yet)"
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        DELIVERED = "delivered", "delivered"
        FAILED = "failed", "gave up"

    call = models.ForeignKey(Call, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhooks")
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    event_id = models.CharField(max_length=36, unique=True)
    url = models.CharField(max_length=500)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_at = models.DateTimeField(db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True, help_text="HTTP status of the last attempt")
    last_error = models.CharField(max_length=300, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        constraints = [  # a call's webhook is sent once: a second queueing finds this row (IntegrityError)
            models.UniqueConstraint(fields=["call"], condition=models.Q(call__isnull=False),
                                    name="webhookdelivery_one_per_call"),
        ]

    def __str__(self) -> str:
        return f"webhook {self.event_id[:8]} ({self.status}, {self.attempts} attempts)"
