"""The offline responder: deterministic keyword intents driven by the campaign. Not an LLM, and
labelled "offline script" everywhere — it exists so a call works with no keys and no network."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

from .base import LLM, LLMResult, LLMStream
from .markers import HANGUP_MARKER

INTENTS: list[tuple[str, str]] = [
    (r"\b(bye|goodbye|that'?s all|no thanks?|nothing else|hang up)\b",
     "Thank you for your time. Goodbye! " + HANGUP_MARKER),
    (r"\[caller pressed (\S+)\]", "You pressed {0}. How can I help you with that?"),
    (r"\b(human|agent|representative|person|operator)\b",
     "I'm an automated assistant, but I can note that you'd like a call back from a person."),
    (r"\b(reschedul\w*|cancel\w*|another time|different day|move it)\b",
     "No problem. Which day works better for you?"),
    (r"\b(price|cost|how much|fee|charge)\b", "I don't have pricing details here, but I can have someone follow up."),
    (r"\b(hours|open|when|what time|time)\b", "We're open Monday to Friday, nine to five."),
    (r"\b(repeat|what|pardon|sorry)\b", "Of course. {greeting}"),
    (r"\b(yes|yeah|yep|sure|correct|confirm\w*|okay|ok|sounds good)\b",
     "Great, you're all set. Is there anything else I can help with?"),
    (r"\b(hello|hi|hey|good (morning|afternoon|evening))\b", "Hi! How can I help you today?"),
]
FALLBACK = "Sorry, I didn't catch that. Could you say it another way?"


def scripted_reply(messages: list[dict]) -> str:
    user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
    greeting = next((m.get("content", "") for m in messages if m.get("role") == "assistant"), "")
    campaign = re.search(r"Campaign:\s*(.+)", system)
    text = str(user).lower()
    for pattern, reply in INTENTS:
        m = re.search(pattern, text)
        if m:
            out = reply.format(*(g for g in m.groups() if g), greeting=greeting or "How can I help you today?")
            if campaign and "{campaign}" in reply:
                out = out.replace("{campaign}", campaign.group(1).strip())
            return out
    return FALLBACK


class _ScriptStream(LLMStream):
    def __init__(self, messages: list[dict], word_delay: float) -> None:
        self.messages = messages
        self.word_delay = word_delay
        self.result = LLMResult(requested_at=time.monotonic())
        self._cancelled = False

    async def __aiter__(self) -> AsyncIterator[str]:
        self.result.requested_at = time.monotonic()
        words = scripted_reply(self.messages).split(" ")
        for i, w in enumerate(words):
            if self._cancelled:
                break
            if i:
                await asyncio.sleep(self.word_delay)
            piece = w + (" " if i < len(words) - 1 else "")
            if self.result.first_token_at is None:
                self.result.first_token_at = time.monotonic()
            self.result.text += piece
            yield piece
        self.result.finish_reason = "stop"
        self.result.finished_at = time.monotonic()

    async def cancel(self) -> None:
        self._cancelled = True


class ScriptedLLM(LLM):
    name = "offline"
    model = "offline-script"

    def __init__(self, *, word_delay: float = 0.005) -> None:
        self.word_delay = word_delay

    def stream(self, messages: list[dict], *, temperature: float = 0.6, max_tokens: int = 300) -> LLMStream:
        return _ScriptStream(messages, self.word_delay)

    async def list_models(self) -> list[str]:
        return [self.model]
