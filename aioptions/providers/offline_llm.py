"""The offline responder: answers from the campaign's own text. Not an LLM, and labelled "offline
script" everywhere — it exists so a call works with no keys and no network.

What it knows is what the campaign says: the greeting, and the facts in the prompt ("We are open
Saturday from 9 am to 1 pm."), found by BM25 over the prompt's sentences (offline_vocab.py). Around
that, a few intents a phone agent must handle whatever the campaign: goodbye (-> [END_CALL]), a
person, rescheduling/cancelling, confirming, a DTMF key, hello, "say that again". When nothing in
the campaign matches the question it says so plainly instead of inventing an answer.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

from .base import LLM, LLMResult, LLMStream
from .markers import HANGUP_MARKER
from .offline_vocab import BM25, sentences, tokens

GOODBYE = "Thank you for calling. Goodbye! " + HANGUP_MARKER
HUMAN = "I'm an automated assistant. I've noted that you'd like a person to call you back."
RESCHEDULE = "No problem. Which day and time would suit you better?"
CONFIRM = "Great, you're all set. Is there anything else I can help with?"
HELLO = "Hi! How can I help you today?"
UNKNOWN = "I'm sorry, I don't have that information. I can ask someone to call you back about it."
FALLBACK = "Sorry, I didn't catch that. Could you say it another way?"
ANYTHING_ELSE = " Is there anything else I can help with?"

_DTMF = re.compile(r"\[caller pressed (\S+)\]")
_GOODBYE = re.compile(r"\b(bye|goodbye|that'?s all|no,? thanks?|no thank you|nothing else|hang up)\b")
_HUMAN = re.compile(r"\b(human|real person|a person|representative|operator|someone real|speak to someone)\b")
_RESCHEDULE = re.compile(r"\b(reschedul\w*|cancel\w*|another (time|day)|different (time|day)|move (it|my))\b")
_CONFIRM = re.compile(r"\b(yes|yeah|yep|sure|correct|confirm\w*|okay|ok|sounds good|that works|fine)\b")
_HELLO = re.compile(r"\b(hello|hi|hey|good (morning|afternoon|evening))\b")
_REPEAT = re.compile(r"\b(repeat|say (that|it) again|pardon|come again)\b")
_QUESTION = re.compile(r"\?|\b(what|when|where|which|who|how|why|do you|are you|is there|can i|can you|could)\b")
_PRICE = re.compile(r"\b(price|cost|how much|fee|charge)\w*\b")
# Sentences that instruct the agent rather than state a fact: never read out to a caller.
_INSTRUCTION = re.compile(
    r"^(you are|you're|you work|your (job|role|task|goal)|be |act |always|never|do not|don't|keep|speak|answer|"
    r"respond|reply|ask |help |greet|use |if the caller|when the caller|the caller|end |avoid|only |"
    r"make sure|try to|remember|confirm|reschedule|remind|call|tell|offer|collect|book|check|say|mention)", re.I)
# "Confirm the caller's appointment (Tuesday at 3 pm)": the parenthesis is a fact inside an instruction
_PAREN_FACT = re.compile(r"((?:the caller's|their|your|the)\s+)?([\w'-]+(?:\s[\w'-]+)?)\s*\(([^)]{3,80})\)")
_VOICE_RULES = "\nSpeak in short, plain sentences for a phone call"


def campaign_facts(system: str) -> list[str]:
    """The prompt's statements of fact, cleaned for speaking (bullets and markdown removed)."""
    system = system.split(_VOICE_RULES, 1)[0]
    facts = []
    for line in sentences(system):
        line = re.sub(r"^[\s\-*•#>\d.)]+", "", line).replace("**", "").strip()
        if re.match(r"^campaign\s*:", line, re.I):
            continue
        if _INSTRUCTION.match(line):
            for m in _PAREN_FACT.finditer(line):
                owner = "Your " if m.group(1) and "caller" in m.group(1) else "The "
                facts.append(f"{owner}{m.group(2)} is {m.group(3).strip()}.")
            continue
        if len(tokens(line)) < 2:
            continue
        if not line.endswith((".", "!", "?")):
            line += "."
        facts.append(line)
    return facts


# A question's kind names words its answer will contain but the question does not ("Where are you?"
# -> "12 Harbour Street"): a small, general expansion rather than a synonym model.
_EXPAND = [
    (re.compile(r"\b(where|located|location|address|find you|directions)\b"),
     "address street road avenue located location near next"),
    (re.compile(r"\b(hours|open|close|closing)\b"), "open opening hours closed close am pm"),
    (re.compile(r"\b(how much|price|cost|fee|charge|pay)\b"), "cost costs price fee dollars euros pounds"),
    (re.compile(r"\b(phone number|call you|contact|email)\b"), "phone number email contact"),
]


def answer_from(facts: list[str], question: str, min_score: float = 1.0) -> str | None:
    """The one or two prompt sentences that best answer ``question``; None when none is relevant."""
    if not facts or not tokens(question):
        return None
    low = question.lower()
    query = " ".join([question, *(extra for pattern, extra in _EXPAND if pattern.search(low))])
    scores = BM25(facts).scores(query)
    ranked = sorted(range(len(facts)), key=lambda i: -scores[i])
    best = ranked[0]
    if scores[best] < min_score:
        return None
    picked = [best]
    if len(ranked) > 1 and scores[ranked[1]] >= 0.75 * scores[best]:
        picked.append(ranked[1])
    return " ".join(facts[i] for i in sorted(picked))


def scripted_reply(messages: list[dict]) -> str:
    user = str(next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""))
    system = str(next((m.get("content", "") for m in messages if m.get("role") == "system"), ""))
    greeting = str(next((m.get("content", "") for m in messages if m.get("role") == "assistant"), ""))
    text = user.lower().replace("\u2019", "'")
    m = _DTMF.search(text)
    if m:
        return f"You pressed {m.group(1)}. How can I help you with that?"
    question = bool(_QUESTION.search(text))
    if _HUMAN.search(text):
        return HUMAN
    if _GOODBYE.search(text) and not question:
        return GOODBYE
    if _RESCHEDULE.search(text):
        return RESCHEDULE
    facts = answer_from(campaign_facts(system), user)
    if facts:
        # "Sure." is its own first piece: synthesised in ~60 ms, it plays while the fact is made
        return "Sure. " + facts + ANYTHING_ELSE
    if _REPEAT.search(text):
        return f"Of course. {greeting or HELLO}"
    if question or _PRICE.search(text):
        return UNKNOWN
    if _CONFIRM.search(text):
        return CONFIRM
    if _HELLO.search(text):
        return HELLO
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
            if i and self.word_delay:
                await asyncio.sleep(self.word_delay)  # a token stream's shape, so the chunker is exercised
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

    def __init__(self, *, word_delay: float = 0.0) -> None:
        self.word_delay = word_delay

    def stream(self, messages: list[dict], *, temperature: float = 0.6, max_tokens: int = 300) -> LLMStream:
        return _ScriptStream(messages, self.word_delay)

    async def list_models(self) -> list[str]:
        return [self.model]
