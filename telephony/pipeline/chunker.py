"""Cut streamed LLM text into speakable pieces: the first as early as sensible (a clause boundary
after a few words), then whole sentences. Strips the hangup marker, even when it arrives split
across deltas, and reports that it was seen."""

from __future__ import annotations

import re

from aioptions.providers.markers import HANGUP_MARKER

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s")
_CLAUSE_END = re.compile(r"[,;:—-]\s")


class SpeakableChunker:
    def __init__(self, first_min_words: int = 1, first_max_words: int = 8) -> None:
        self.first_min_words = first_min_words
        self.first_max_words = first_max_words
        self._buf = ""
        self._emitted_any = False
        self.hangup = False

    def _strip_marker(self) -> None:
        if HANGUP_MARKER in self._buf:
            self._buf = self._buf.replace(HANGUP_MARKER, " ")
            self.hangup = True

    def _held_tail(self) -> int:
        """Length of a suffix that could be the start of the marker (kept back until resolved)."""
        for n in range(min(len(HANGUP_MARKER) - 1, len(self._buf)), 0, -1):
            if HANGUP_MARKER.startswith(self._buf[-n:]):
                return n
        return 0

    def feed(self, delta: str) -> list[str]:
        self._buf += delta
        self._strip_marker()
        hold = self._held_tail()
        text = self._buf[: len(self._buf) - hold] if hold else self._buf
        pieces: list[str] = []
        while True:
            cut = self._find_cut(text)
            if cut is None:
                break
            piece, text = text[:cut], text[cut:]
            if piece.strip():
                pieces.append(piece)
                self._emitted_any = True
        self._buf = text + (self._buf[len(self._buf) - hold:] if hold else "")
        return pieces

    def _find_cut(self, text: str) -> int | None:
        m = _SENTENCE_END.search(text)
        if not self._emitted_any:
            words = len(text.split())
            c = _CLAUSE_END.search(text)
            if c and len(text[: c.end()].split()) >= self.first_min_words and (not m or c.end() < m.end()):
                return c.end()
            if m:
                return m.end()
            if words > self.first_max_words:
                return text.rfind(" ", 0, len(text) - 1) + 1 or None
            return None
        return m.end() if m else None

    def flush(self) -> list[str]:
        self._strip_marker()
        rest, self._buf = self._buf, ""
        return [rest] if rest.strip() else []
