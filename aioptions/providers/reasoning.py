"""Reasoning must never be spoken: per-model request fields that hide it, and a filter for think
blocks that still arrive in the answer text.

Why both: the request fields are what the providers document, but a model served with its default
(Groq's default ``reasoning_format`` for Qwen3 is ``raw``: ``<think>...</think>`` inside
``content``), an OpenAI-compatible server that ignores the fields, or a new model id all put the
reasoning back into the text. The filter is cheap and runs on every stream, so whatever the server
does, nothing between ``<think>`` and ``</think>`` reaches the TTS.

Sources of the field values (one place per provider, keep them here):
- Groq, console.groq.com/docs/reasoning and the ``reasoning_effort`` docstring of the groq SDK's
  ``completion_create_params`` (1.7.0): ``reasoning_format`` is hidden|raw|parsed and is mutually
  exclusive with ``include_reasoning``; gpt-oss takes ``reasoning_effort`` low|medium|high (medium
  default) and reasoning goes to ``delta.reasoning`` unless ``include_reasoning`` is false; qwen3
  models take ``none`` (reasoning off) or ``default``.
- OpenAI, platform.openai.com/docs/guides/reasoning: reasoning models (gpt-5*, o*) never put
  reasoning in ``content``; they accept only the default temperature; ``reasoning_effort`` minimal
  (gpt-5) or low (o-series) is the least thinking a voice turn can afford.
"""

from __future__ import annotations

import re

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"

_OPENAI_REASONING = re.compile(r"^(gpt-5|o\d)")


def groq_reasoning_args(model: str) -> dict:
    """Request fields that keep a Groq reasoning model's thinking out of ``content`` (and short)."""
    if model.startswith("openai/gpt-oss"):
        # reasoning_format is not used with include_reasoning (mutually exclusive)
        return {"reasoning_effort": "low", "include_reasoning": False}
    if model.startswith("qwen/qwen3"):
        return {"reasoning_effort": "none", "reasoning_format": "hidden"}
    return {}


def openai_reasoning_args(model: str) -> dict | None:
    """Fields for an OpenAI reasoning model, or None for a model that does not reason."""
    if not _OPENAI_REASONING.match(model):
        return None
    return {"reasoning_effort": "minimal" if model.startswith("gpt-5") else "low"}


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ThinkFilter:
    """Drops ``<think>...</think>`` blocks from streamed text, whatever the chunk boundaries.

    ``feed(delta)`` returns the speakable part that is certain so far; a tail that could be the
    start of a tag is held back until the next delta resolves it. ``flush()`` returns what is held
    at the end of the stream (an unclosed think block is dropped: it was never an answer). Leading
    whitespace right after a think block is dropped too, so the answer does not start with a gap.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._inside = False
        self._after_block = False
        self.removed_chars = 0  # how much reasoning was filtered out (for logs and tests)

    def feed(self, delta: str) -> str:
        self._buf += delta
        out: list[str] = []
        while self._buf:
            if self._inside:
                end = self._buf.find(CLOSE_TAG)
                if end < 0:
                    keep = _partial_suffix(self._buf, CLOSE_TAG)
                    self.removed_chars += len(self._buf) - keep
                    self._buf = self._buf[len(self._buf) - keep:]
                    break
                self.removed_chars += end + len(CLOSE_TAG)
                self._buf = self._buf[end + len(CLOSE_TAG):]
                self._inside = False
                self._after_block = True
                continue
            if self._after_block:
                stripped = self._buf.lstrip()
                if not stripped:
                    self._buf = ""
                    break
                self._buf = stripped
                self._after_block = False
            start = self._buf.find(OPEN_TAG)
            if start >= 0:
                out.append(self._buf[:start])
                self._buf = self._buf[start + len(OPEN_TAG):]
                self._inside = True
                continue
            keep = _partial_suffix(self._buf, OPEN_TAG)
            out.append(self._buf[: len(self._buf) - keep])
            self._buf = self._buf[len(self._buf) - keep:]
            break
        return "".join(out)

    def flush(self) -> str:
        rest, self._buf = self._buf, ""
        if self._inside:
            self.removed_chars += len(rest)
            return ""
        return rest


def strip_think(text: str) -> str:
    """The non-streamed form: ``text`` without any think block."""
    f = ThinkFilter()
    return f.feed(text) + f.flush()
