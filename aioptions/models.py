"""AIConfig (the one global AI selection), its change history, and API tokens."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from . import catalog


class AIConfig(models.Model):
    """Singleton row (pk=1). Read through ``selectors.get_ai_config``; write via ``services``."""

    llm_provider = models.CharField(max_length=32, default=catalog.DEFAULT_LLM[0])
    llm_model = models.CharField(max_length=128, default=catalog.DEFAULT_LLM[1])
    tts_provider = models.CharField(max_length=32, default=catalog.DEFAULT_VOICE[0])
    tts_voice_id = models.CharField(max_length=128, default=catalog.DEFAULT_VOICE[1])
    eot_threshold = models.FloatField(
        default=0.7, validators=[MinValueValidator(0.5), MaxValueValidator(1.0)]
    )
    eager_eot_threshold = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.3), MaxValueValidator(0.9)],
        help_text="Empty = eager end-of-turn off",
    )
    eot_timeout_ms = models.PositiveIntegerField(
        default=5000, validators=[MinValueValidator(500), MaxValueValidator(60000)]
    )
    # Turn behaviour beyond Flux's own end-of-turn settings (issue 20): applied by the voice pipeline
    barge_in = models.BooleanField(default=True, help_text="The caller may interrupt the agent")
    barge_in_min_ms = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(2000)],
        help_text="Caller speech needed before the agent stops (0 = at once; higher = less sensitive)")
    max_call_s = models.PositiveIntegerField(
        default=1800, validators=[MinValueValidator(30), MaxValueValidator(14400)],
        help_text="The agent says goodbye and hangs up after this long")
    filler_ms = models.PositiveIntegerField(
        default=1000, validators=[MinValueValidator(300), MaxValueValidator(5000)],
        help_text="No reply audio this long after the caller stopped: a short filler plays")
    apology_ms = models.PositiveIntegerField(
        default=3000, validators=[MinValueValidator(1000), MaxValueValidator(15000)],
        help_text="LLM still silent this long after the caller stopped: apologise and try the next model")
    version = models.PositiveIntegerField(default=0, help_text="Bumped on every change")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "AI configuration"
        verbose_name_plural = "AI configuration"

    def __str__(self) -> str:
        return (f"AI config v{self.version}: {self.llm_provider}/{self.llm_model}, "
                f"{self.tts_provider}/{self.tts_voice_id}")

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)


class AIConfigChange(models.Model):
    """Who changed what and when: one row per changed field (AIConfig or a campaign's voice)."""

    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=16)  # page | api | ws | admin | cli
    target = models.CharField(max_length=64)  # "ai_config" | "campaign:<id>"
    field = models.CharField(max_length=64)
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.target}.{self.field}: {self.old_value!r} -> {self.new_value!r}"


class ApiToken(models.Model):
    """A bearer token for the JSON API. Only a SHA-256 of the token is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=64, default="default")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.user} / {self.name}"

    @staticmethod
    def hash(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name: str = "default") -> tuple[ApiToken, str]:
        raw = "tk_" + secrets.token_urlsafe(32)
        return cls.objects.create(user=user, name=name, key_hash=cls.hash(raw)), raw
