"""Live config for one call: listen on the ``ai_options`` Channels group and act within a frame batch.

The DB stays the source of truth (every turn re-reads it, so a bridge process without a shared
channel layer still converges from the next turn). What the event adds:
- turn settings (eager end-of-turn, EOT thresholds/timeout, keyterms) reach the open Flux socket as
  ``Configure`` at once, so they govern the very next turn;
- a newly selected LLM or voice is prewarmed in the background (client built, connection opened),
  so the first reply after a switch pays no connection setup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from channels.layers import get_channel_layer

from aioptions.events import CONFIG_GROUP

from . import store

log = logging.getLogger("telephony.pipeline")
RETRY_MIN_S, RETRY_MAX_S = 0.5, 5.0  # channel layer outage: first wait, longest wait between tries
_LISTENERS: dict[str, LiveConfig] = {}  # this process's live calls by their channel (rejoined together)
_CATCH_UPS: set[asyncio.Task] = set()  # re-reads started for other calls after an outage (kept referenced)


def turn_key(turn) -> tuple:
    return (turn.eot_threshold, turn.eager_eot_threshold, turn.eot_timeout_ms,
            tuple(getattr(turn, "keyterms", None) or ()))


class LiveConfig:
    def __init__(self, agent) -> None:
        self.agent = agent
        self.applied_turn = turn_key(agent.cfg.turn)
        self.events = 0
        self.configures_sent = 0
        self.prewarmed: list[tuple[str, str]] = []  # ("llm"|"tts", id) in order, for logs and tests
        self.changed = asyncio.Event()  # set after each handled change (tests wait on it)
        self.retrying = False  # this call saw the channel layer fail and is waiting to rejoin

    async def run(self) -> None:
        """Listen for the call's whole life. The channel layer failing (Redis restarted or out of
        reach) must not end live config for the call: the receive raises, this waits (0.5 s
        doubling to 5 s), joins the group again (a restarted Redis has forgotten it) and re-reads
        the config once, for a change saved while it was away."""
        layer = get_channel_layer()
        if layer is None:
            return
        channel, delay, joined = None, 0.0, False
        try:
            while True:
                try:
                    if channel is None:
                        channel = await layer.new_channel()
                    await layer.group_add(CONFIG_GROUP, channel)
                    if not joined:
                        joined = True
                        _LISTENERS[channel] = self
                        await self.join_check()
                    if delay:
                        delay, self.retrying = 0.0, False
                        await self.rejoin_others(layer)
                        await self.catch_up()
                    await self._listen(layer, channel)
                except Exception as exc:  # noqa: BLE001 - an outage of the layer must not end the call
                    self.retrying = True
                    if not delay:  # once per outage, not once per retry
                        log.warning("call %s: channel layer failed (%s: %s); live config resumes when it is back",
                                    self.agent.call.call_id, type(exc).__name__, exc)
                    delay = min(max(delay * 2, RETRY_MIN_S), RETRY_MAX_S)
                    await asyncio.sleep(delay)
        finally:
            if channel is not None:
                _LISTENERS.pop(channel, None)
                with contextlib.suppress(Exception):
                    await layer.group_discard(CONFIG_GROUP, channel)

    async def _listen(self, layer, channel: str) -> None:
        while True:
            message = await layer.receive(channel)
            if message.get("type") == "config.updated":
                self.events += 1
                try:
                    await self.apply()
                    self.log_received(message)
                except Exception:  # noqa: BLE001 - a bad event must not end the call
                    log.exception("call %s: live config change failed", self.agent.call.call_id)
                self.changed.set()

    async def rejoin_others(self, layer) -> None:
        """Back after an outage: put every other live call of this process in the group again and
        have each re-read. Not every call notices a Redis restart: channels_redis runs one BRPOP
        per process for all its calls, so only the call holding it sees the error; a call whose
        turn comes once Redis is back blocks on the new, empty Redis without one (seen in the
        fleet test: one call of a bridge never got the next change)."""
        for channel, other in list(_LISTENERS.items()):
            if other is self or other.retrying:  # one that saw it too comes back by itself
                continue
            try:
                await layer.group_add(CONFIG_GROUP, channel)
            except Exception:  # noqa: BLE001 - down again: our own retry comes back here
                return
            task = asyncio.create_task(other.catch_up())
            _CATCH_UPS.add(task)
            task.add_done_callback(_CATCH_UPS.discard)

    async def join_check(self) -> None:
        """A change saved between the call's own config read (call set-up: the recogniser's
        connection, the greeting) and joining the group had nobody listening for it in this call:
        read once more now that every later change arrives as an event. Applied and logged only
        when something differs, so a call pays one extra read at start and nothing else."""
        try:
            _, cfg = await store.resolve_config(self.agent.call.campaign_id)
            if cfg == self.agent.cfg:
                return
            await self.apply(cfg)
        except Exception:  # noqa: BLE001 - the next turn re-reads anyway
            log.exception("call %s: config check after joining the live group failed", self.agent.call.call_id)
            return
        cfg = self.agent.cfg
        log.info("call %s: config v%s changed during call set-up, applied: llm %s/%s, voice %s/%s",
                 self.agent.call.call_id, cfg.version, cfg.llm_provider, cfg.llm_model, cfg.tts_provider, cfg.voice_id)
        self.changed.set()

    async def catch_up(self) -> None:
        """Back on the channel layer after an outage: apply what the database holds now."""
        try:
            await self.apply()
        except Exception:  # noqa: BLE001 - the next turn re-reads anyway
            log.exception("call %s: config re-read after the channel layer outage failed", self.agent.call.call_id)
            return
        cfg = self.agent.cfg
        log.info("call %s: channel layer back; config re-read: llm %s/%s, voice %s/%s", self.agent.call.call_id,
                 cfg.llm_provider, cfg.llm_model, cfg.tts_provider, cfg.voice_id)
        self.changed.set()

    def log_received(self, message: dict) -> None:
        """One line per call and change: which config version reached this call and what it now
        holds. It is how an operator (and the fleet test) sees that a save on the page reached
        the live calls of every bridge process, not only at their next turn's re-read."""
        cfg = self.agent.cfg
        payload = message.get("payload") or {}
        target = str(payload.get("target") or "ai_config")[:40]  # "ai_config" or "campaign:<id>"
        version = (payload.get("config") or {}).get("version")
        what = f"config v{version}" if target == "ai_config" else f"{target} change"
        log.info("call %s: %s received live: llm %s/%s, voice %s/%s", self.agent.call.call_id, what,
                 cfg.llm_provider, cfg.llm_model, cfg.tts_provider, cfg.voice_id)

    async def apply(self, cfg=None) -> None:
        """Take the current config (``cfg`` when just read, else read now) into the call."""
        agent = self.agent
        if cfg is None:
            _, cfg = await store.resolve_config(agent.call.campaign_id)
        agent.cfg = cfg  # barge-in, filler/apology timing and call length apply from the next turn
        await self.apply_turn(cfg.turn)
        llm = (cfg.llm_provider, cfg.llm_model)
        if llm not in agent.llm_clients:
            self.prewarmed.append(("llm", f"{llm[0]}/{llm[1]}"))
            agent.background.spawn(agent.prewarm_llm(*llm))  # owned by the call: cancelled with it
        tts = (cfg.tts_provider, cfg.voice_id)
        if tts != agent.tts_key and tts not in agent.warm_tts:
            self.prewarmed.append(("tts", f"{tts[0]}/{tts[1]}"))
            agent.background.spawn(agent.prewarm_tts(*tts))

    async def apply_turn(self, turn) -> None:
        """Send changed turn settings to the recogniser (also called at each turn start, which is how
        a bridge process without a shared channel layer still converges)."""
        agent = self.agent
        if turn_key(turn) != self.applied_turn:
            self.applied_turn = turn_key(turn)
            agent.machine.eager_enabled = turn.eager_eot_threshold is not None
            stt = agent.stt.session
            if stt is not None:
                keyterms = getattr(turn, "keyterms", None)
                await stt.configure(eot_threshold=turn.eot_threshold, eager_eot_threshold=turn.eager_eot_threshold,
                                    eot_timeout_ms=turn.eot_timeout_ms,
                                    keyterms=list(keyterms) if keyterms is not None else None)
                self.configures_sent += 1
                log.info("call %s: turn settings sent to %s: eot %s eager %s timeout %s ms", agent.call.call_id,
                         agent.stt.provider, turn.eot_threshold, turn.eager_eot_threshold, turn.eot_timeout_ms)
