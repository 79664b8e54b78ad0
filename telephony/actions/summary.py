"""What the agent tells the target of a warm transfer before the caller is joined.

A person picking up a transferred call needs two sentences, not the transcript: who is calling
and what they want. With an LLM provider configured, one short non-streaming completion writes
them from the conversation so far; without one (offline, no key) or when that request fails or is
slow, a plain template built from the caller's last turns says it instead — so a warm transfer
works with no network at all. The text is bounded (it is spoken while the caller holds).
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("telephony.actions")
MAX_SUMMARY_CHARS = 400
LLM_TIMEOUT_S = 4.0  # the caller is on hold meanwhile: past this the template is good enough
OPENING = "Hello, this is the virtual assistant with a call transfer."
CLOSING = "I am connecting you now."
PROMPT = ("You hand a phone call over to a colleague. In at most two short spoken sentences, say who is "
          "calling and what they want, from the conversation below. Plain words, no lists, no greeting.")


def turns(history: list[dict], last: int = 6) -> list[tuple[str, str]]:
    """The spoken turns of the conversation, (speaker, text), newest ``last`` only: the system
    prompt, tool calls and tool results are not what was said."""
    out: list[tuple[str, str]] = []
    for m in history:
        text = m.get("content")
        if m.get("role") not in ("user", "assistant") or not isinstance(text, str):
            continue
        text = " ".join(text.split())
        if text and text != "(interrupted)":
            out.append(("caller" if m["role"] == "user" else "agent", text))
    return out[-last:]


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3].rsplit(" ", 1)[0] + "..."


def template(history: list[dict]) -> str:
    """The offline summary: the caller's last two turns, quoted (what they said is the best
    summary a template can give), between a fixed opening and closing."""
    said = [text for who, text in turns(history) if who == "caller" and not text.startswith("[caller pressed")]
    if not said:
        return f"{OPENING} The caller did not say much yet. {CLOSING}"
    body = _clip(" ".join(said[-2:]), MAX_SUMMARY_CHARS - len(OPENING) - len(CLOSING) - 20)
    return f"{OPENING} The caller said: {body} {CLOSING}"


async def summarise(history: list[dict], llm=None, model: str = "") -> tuple[str, str]:
    """(summary text, how: "llm" | "template"). ``llm`` is the call's OpenAI-compatible client
    (``aioptions.providers.llm``); anything without an SDK client (the scripted offline LLM, None)
    gets the template."""
    sdk = getattr(llm, "client", None)
    if sdk is None or not turns(history):
        return template(history), "template"
    convo = "\n".join(f"{who}: {text}" for who, text in turns(history, last=12))
    try:
        resp = await asyncio.wait_for(sdk.chat.completions.create(
            model=model, max_tokens=120, temperature=0.2,
            messages=[{"role": "system", "content": PROMPT}, {"role": "user", "content": convo[:6000]}]),
            LLM_TIMEOUT_S)
        text = " ".join((resp.choices[0].message.content or "").split())
    except Exception as exc:  # noqa: BLE001 - the template always works
        log.warning("transfer summary by LLM failed (%s); using the template", type(exc).__name__)
        return template(history), "template"
    if not text:
        return template(history), "template"
    return f"{OPENING} {_clip(text, MAX_SUMMARY_CHARS - len(OPENING) - len(CLOSING) - 2)} {CLOSING}", "llm"
