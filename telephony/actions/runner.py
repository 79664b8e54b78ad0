"""The one tool runner: every function call the model makes goes through ``ToolRunner.run``.

It parses the arguments, refuses unknown tools and arguments that break the tool's schema (the
model is told why, and can correct itself), runs a built-in or signs and sends the HTTP request,
and returns a result for the model plus a record for the Turn row. ``run_with_filler`` says a short
filler when a tool takes longer than ``ACTIONS_TOOL_FILLER_MS`` (the clock is injectable, so tests
drive it with an event instead of sleeping).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.conf import settings

from aioptions.logsafe import clip
from aioptions.providers.base import ToolCallRequest
from campaigns import schema
from campaigns.tools import RuntimeActions

from . import builtins, httpclient, signing

log = logging.getLogger("telephony.actions")
RESULT_FOR_MODEL = 4000
EXCERPT = 500
MAX_CALLS_PER_ROUND = 5


@dataclass
class ToolOutcome:
    """One call's result. ``content`` goes back to the model as the ``tool`` message."""

    call_id: str
    name: str
    arguments: dict | str
    status: str  # ok | error | timeout | refused
    content: str
    latency_ms: float = 0.0

    def record(self, position: int) -> dict:
        return {"position": position, "name": self.name[:64],
                "arguments": self.arguments if isinstance(self.arguments, dict) else {"_raw": self.arguments[:500]},
                "status": self.status, "result_excerpt": self.content[:EXCERPT], "latency_ms": self.latency_ms}


@dataclass
class Requests:
    """What built-ins asked the agent to do once the reply has been spoken."""

    hangup: bool = False
    transfer_to: str = ""
    transfer_mode: str = "blind"  # or "warm": brief the target first (telephony.media.warm)
    records: list[dict] = field(default_factory=list)  # this turn's ToolCall rows


class ToolRunner:
    def __init__(self, call, actions: RuntimeActions, clock=None) -> None:
        from aioptions.clock import Clock

        self.call = call
        self.actions = actions
        self.clock = clock or Clock()
        self.requests = Requests()

    # --- what the model sees ---------------------------------------------------------------
    def specs(self) -> list[dict]:
        http = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": t.parameters or {"type": "object", "properties": {}}}}
                for t in self.actions.tools]
        return builtins.specs(self.actions.builtins, self.actions.transfer_targets) + http

    # --- running ---------------------------------------------------------------------------
    async def run_with_filler(self, req: ToolCallRequest, say_filler: Callable[[], Awaitable[object]]) -> ToolOutcome:
        """Run the tool; if it is still running ``ACTIONS_TOOL_FILLER_MS`` later, say the filler
        (once) and keep waiting. The tool's own timeout bounds the wait."""
        task = asyncio.ensure_future(self.run(req))
        filler_at = self.clock.now() + settings.ACTIONS_TOOL_FILLER_MS / 1000
        waiter = asyncio.ensure_future(self.clock.sleep_until(filler_at))
        try:
            done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if task not in done:
                await say_filler()
            return await task
        finally:
            waiter.cancel()
            if not task.done():
                task.cancel()

    async def run(self, req: ToolCallRequest) -> ToolOutcome:
        started = time.monotonic()
        outcome = await self._dispatch(req)
        outcome.latency_ms = outcome.latency_ms or round((time.monotonic() - started) * 1000, 1)
        self.requests.records.append(outcome.record(len(self.requests.records)))
        log.info("call %s: tool %s -> %s (%.0f ms)", getattr(self.call, "call_id", "?"), clip(req.name, 64),
                 outcome.status, outcome.latency_ms)
        return outcome

    async def _dispatch(self, req: ToolCallRequest) -> ToolOutcome:
        def out(status: str, content: str, args: dict | str = req.arguments, latency: float = 0.0) -> ToolOutcome:
            return ToolOutcome(req.id, req.name, args, status, content, latency)

        try:
            args = json.loads(req.arguments or "{}")
        except ValueError:
            return out("error", "error: the arguments are not valid JSON")
        if not isinstance(args, dict):
            return out("error", "error: the arguments must be a JSON object")
        if req.name in self.actions.builtins:
            status, content = await self._builtin(req.name, args)
            return out(status, content, args)
        tool = next((t for t in self.actions.tools if t.name == req.name), None)
        if tool is None:
            return out("refused", f"error: there is no tool named {req.name[:64]}", args)
        problems = schema.validate(args, tool.parameters or {"type": "object"})
        if problems:
            return out("error", "error: bad arguments: " + "; ".join(problems), args)
        body = json.dumps({"tool": tool.name, "arguments": args, "call": self._call_info()},
                          separators=(",", ":")).encode()
        headers = {**tool.headers, **signing.signed_headers(self.actions.secret, body)}
        res = await httpclient.send(tool.method, tool.url, body, headers, tool.timeout_s)
        if res.ok:
            text = res.body.decode("utf-8", "replace")[:RESULT_FOR_MODEL]
            return out("ok", text + (" [truncated]" if res.truncated else ""), args, res.latency_ms)
        status = "timeout" if res.error.startswith("timed out") else (
            "refused" if res.error.startswith("blocked") else "error")
        detail = res.body.decode("utf-8", "replace")[:300] if res.body else ""
        return out(status, f"error: {res.error}" + (f": {detail}" if detail else ""), args, res.latency_ms)

    def _call_info(self) -> dict:
        return {"call_id": getattr(self.call, "record_id", None), "sip_call_id": getattr(self.call, "call_id", ""),
                "campaign_id": self.actions.campaign_id, "caller": getattr(self.call, "caller_uri", ""),
                "direction": getattr(self.call, "direction", "inbound")}

    # --- built-ins -------------------------------------------------------------------------
    async def _builtin(self, name: str, args: dict) -> tuple[str, str]:
        if name == "end_call":
            self.requests.hangup = True
            return "ok", "ok: the call ends after your reply; say a short goodbye now"
        if name == "transfer_call":
            return await self._transfer(str(args.get("target", "")).strip(), str(args.get("mode") or "blind"))
        if name == "add_to_do_not_call":
            number = builtins.caller_number(getattr(self.call, "caller_uri", "")) or \
                str((getattr(self.call, "context", {}) or {}).get("to", ""))
            if not number:
                return "error", "error: the caller's number is unknown"
            from campaigns.contacts import add_dnc

            try:
                await sync_to_async(add_dnc)(number, str(args.get("reason", "asked during a call"))[:200])
            except Exception as exc:  # noqa: BLE001 - InputError for a number we cannot normalise
                return "error", f"error: {str(exc)[:200]}"
            return "ok", "ok: the number will not be called again"
        if name == "send_dtmf":
            digits = str(args.get("digits", "")).upper()
            if not builtins.DIGITS.fullmatch(digits):
                return "error", "error: digits must be 1-32 of 0-9, A-D, * and #"
            self.call.play(builtins.dtmf_audio(digits, getattr(self.call, "codec", "PCMU")))
            return "ok", f"ok: pressed {digits}"
        return "refused", f"error: {name} is not enabled"

    async def _transfer(self, target: str, mode: str = "blind") -> tuple[str, str]:
        """Allowed: a campaign transfer target, else a number within the trunk's prefixes or an
        extension (campaigns.outbound.route); a sip: URI only when it is listed. The same rules
        for both modes: a warm transfer dials the target the way a bridged one does."""
        if not target:
            return "error", "error: name a target"
        if mode not in builtins.TRANSFER_MODES:
            return "error", "error: mode must be blind or warm"
        if target not in self.actions.transfer_targets:
            if target.lower().startswith("sip:"):
                return "refused", "error: that SIP address is not a transfer target of this campaign"
            from campaigns.tools import check_target

            try:
                target = await sync_to_async(check_target)(target, self.actions.campaign_id)
            except Exception as exc:  # noqa: BLE001 - InputError: refused by the routing rules
                return "refused", f"error: {str(exc)[:200]}"
        if not hasattr(self.call, "transfer"):
            return "error", "error: this call cannot be transferred"
        self.requests.transfer_to, self.requests.transfer_mode = target, mode
        if mode == "warm":
            return "ok", ("ok: after your reply you will call the target and brief them; tell the caller to hold "
                          "while you connect them")
        return "ok", "ok: the transfer starts after your reply; tell the caller you are transferring them"
