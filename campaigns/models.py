"""Outreach campaigns: prompt, greeting, the extension that routes calls to it, and its voice."""

from __future__ import annotations

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
