"""VoicePipelineAgent: one call's conversation — STT events drive turns, replies stream through
LLM -> speakable pieces -> TTS -> paced RTP, every turn records its waterfall at the wire.

The jobs around it live in their own modules: supervisor.py (a recogniser that always listens),
live.py (config changes applied mid-call: Flux Configure, prewarming), fillers.py (no dead air:
filler, apology, goodbye timed from the end of speech), llmflow.py (the LLM fallback chain),
voiceclock.py (the bridge's audio clock, the zero of every deadline and waterfall), turnloop.py
(a committed turn to its spoken, recorded reply) and telephony.actions.session (tools, transfer)."""

from __future__ import annotations

import asyncio
import logging
import time

from aioptions.providers import factory, netpool
from aioptions.providers.base import ALAW_8K, MULAW_8K, STTError, TurnEvent
from telephony.actions.session import CallTools
from telephony.media.contract import DtmfEvent, HangupEvent

from . import fillers, store
from .callstate import CallState
from .calltasks import CallTasks
from .live import LiveConfig
from .speech import SpokenReply
from .supervisor import STTSupervisor
from .turnloop import TurnLoop
from .turns import BargeIn, CancelSpeculative, Commit, StartSpeculative, TurnMachine
from .voiceclock import VoiceClock

log = logging.getLogger("telephony.pipeline")
VOICE_RULES = ("\nSpeak in short, plain sentences for a phone call: no lists, no markdown. When the caller is "
               "done, say a short goodbye and end your reply with [END_CALL].")


class VoicePipelineAgent(TurnLoop):
    def __init__(self, call, options: dict | None = None, clock: fillers.Clock | None = None) -> None:
        self.call = call
        self.options = options or {}
        self.clock = clock or fillers.Clock()
        self.state = CallState()  # what the call remembers and what is in flight (callstate.py)
        self.voice = VoiceClock(call.codec)
        self.llm_clients: dict[tuple[str, str], object] = {}  # SDK clients are costly: one per model per call
        self.warm_tts: dict[tuple[str, str], object] = {}  # voices prewarmed after a config change
        self.stt: STTSupervisor | None = None
        self.tools = CallTools(call, self.clock)  # the campaign's tools and built-ins (issue 16)
        self.background = CallTasks(call.call_id)  # side jobs, cancelled when the call ends

    # --- setup -----------------------------------------------------------------------------
    async def run(self, call) -> None:
        self.campaign, self.cfg = await store.resolve_config(call.campaign_id)
        self.fmt = MULAW_8K if call.codec == "PCMU" else ALAW_8K
        self.tts = factory.build_tts(self.cfg)
        self.tts_key = (self.cfg.tts_provider, self.cfg.voice_id)
        # a call the bridge placed (issue 15): the runner's context has the prompt with the contact's
        # {variables} filled in and a note that we called, and the personalised greeting
        placed = call.context if getattr(call, "direction", "inbound") == "outbound" else {}
        system = (placed.get("system_prompt") or (self.campaign.system_prompt if self.campaign
                                                  else "You are a helpful phone agent.")) + VOICE_RULES
        self.state.history = [{"role": "system", "content": system}]
        greeting = placed.get("greeting") or (self.campaign.greeting if self.campaign else "") or \
            "Hello, how can I help you?"
        self.machine = TurnMachine(eager_enabled=self.cfg.turn.eager_eot_threshold is not None)
        self.live = LiveConfig(self)
        self.background.spawn(self.prewarm_llm(self.cfg.llm_provider, self.cfg.llm_model, once_per_pool=True))
        self.stt = STTSupervisor(self.cfg, self.fmt, call.call_id, self.note)
        try:
            await self.stt.open()
        except STTError as exc:
            log.error("call %s: no recogniser at all (%s); hanging up", call.call_id, exc)
            await self.goodbye("stt unavailable")
            await self.background.aclose()
            await self._cleanup()
            return
        use_context = getattr(self.stt.session, "use_context", None)
        if use_context is not None:  # the offline recogniser: the campaign's words prompt Whisper
            use_context(f"{system.removesuffix(VOICE_RULES)}\n{greeting}")
        self.state.history.append({"role": "assistant", "content": greeting})
        self.state.reply_task = asyncio.create_task(self._speak(greeting, render_clips=True))
        tasks = [asyncio.create_task(self._pump_audio()), asyncio.create_task(self.stt.run(self._handle, self.goodbye)),
                 asyncio.create_task(self._call_events()), asyncio.create_task(self.live.run()),
                 asyncio.create_task(self._max_length_watch())]
        try:
            await tasks[2]  # ends with the hang-up
        finally:
            self.tools.cancel_prefetch()
            in_flight = [*tasks, self.state.reply_task, self.state.spec_task, self.state.cfg_task]
            pending = [t for t in in_flight if t is not None and not t.done()]
            for t in pending:
                t.cancel()
            if pending:  # let a cut-off reply record its turn before the call summary is computed
                await asyncio.wait(pending, timeout=1.0)
            await self.background.aclose()
            await self._cleanup()

    def note(self, text: str) -> None:
        """A provider fault handled mid-call: logged where it happened, recorded on the next Turn row."""
        self.state.notes.append(text)

    def llm_client(self, provider: str, model: str):
        key = (provider, model)
        if key not in self.llm_clients:
            self.llm_clients[key] = factory.build_llm_for(provider, model)
        return self.llm_clients[key]

    def open_stream(self, provider: str, model: str, messages: list[dict]):
        """A completion with the campaign's tools offered to clients that take them (not offline)."""
        llm = self.llm_client(provider, model)
        specs = self.tools.specs() if getattr(llm, "supports_tools", False) else []
        return llm.stream(messages, tools=specs) if specs else llm.stream(messages)

    async def prewarm_llm(self, provider: str, model: str, *, once_per_pool: bool = False) -> None:
        """Build the LLM client and make one cheap request (GET /models) before it is needed (call
        start, or a model switched mid-call), so a turn does not pay for connection setup.
        ``once_per_pool`` (call start): skip it when the process's shared pool for this provider was
        warmed in the last 30 s (netpool.claim_warm_up: at 100 calls it was ~1.3 s of loop time)."""
        pool = None
        try:
            llm = self.llm_client(provider, model)
            pool = getattr(getattr(llm, "client", None), "_client", None)
            if once_per_pool and not netpool.claim_warm_up(pool, time.monotonic()):
                return
            await asyncio.wait_for(llm.list_models(), 3)
        except Exception:  # noqa: BLE001 - only an optimisation
            netpool.forget_warm_up(pool)

    async def prewarm_tts(self, provider: str, voice_id: str) -> None:
        """Build the newly selected voice and open its connection (Cartesia's WebSocket) now."""
        try:
            tts = factory.build_tts_for(provider, voice_id)
            self.warm_tts[(provider, voice_id)] = tts
            connect = getattr(tts, "connect", None)
            if connect is not None:
                await asyncio.wait_for(connect(), 3)
            await fillers.render_clips(tts, self.fmt)
        except Exception:  # noqa: BLE001 - only an optimisation
            pass

    async def _cleanup(self) -> None:
        """Summary first (it is what the dashboard reads), then close provider connections; the
        bridge gives an ending agent about 2 s, so everything here is bounded."""
        await store.summarise_call(self.call.record_id, self.cfg.llm_model, self.cfg.voice_id)
        self.tools.after_call(self.call.record_id)  # the webhook (extraction, delivery) in the background
        closers = [self.tts.aclose(), *(llm.aclose() for llm in self.llm_clients.values()),
                   *(t.aclose() for t in self.warm_tts.values() if t is not self.tts)]
        if self.stt is not None:
            closers.append(self.stt.close())
        try:
            await asyncio.wait_for(asyncio.gather(*closers, return_exceptions=True), 1.5)
        except TimeoutError:
            log.warning("call %s: provider connections did not close in time", self.call.call_id)

    # --- inputs ----------------------------------------------------------------------------
    async def _pump_audio(self) -> None:
        """Every inbound 20 ms frame goes to STT unchanged (mu-law/A-law straight from RTP). The
        stream is continuous (silence-filled), so the recogniser can always close a turn."""
        async for frame in self.call.audio_in():
            self.voice.on_frame(frame, time.monotonic())
            await self.stt.send(frame)

    def agent_speaking(self) -> bool:
        return bool(self.call.playout_queued_bytes) or self.state.speaking()

    async def _call_events(self) -> None:
        async for ev in self.call.events():
            if isinstance(ev, DtmfEvent):
                fake = TurnEvent("EndOfTurn", self.state.turn_index, transcript=f"[caller pressed {ev.digit}]",
                                 received_at=ev.at, audio_window_end=self.voice.audio_seconds)
                await self._handle(fake)
            elif isinstance(ev, HangupEvent):
                return

    async def _handle(self, ev: TurnEvent) -> None:
        if self.tools.transferring:  # the caller holds while we transfer: no turn, no barge-in
            return
        if ev.kind == "StartOfTurn":  # prefetch the config and tools for this turn (live changes apply here)
            self.state.cfg_task = asyncio.create_task(store.resolve_config(self.call.campaign_id))
            self.tools.prefetch()
        for action in self.machine.on_event(ev, self.agent_speaking()):
            if isinstance(action, BargeIn):
                await self._maybe_barge_in(ev)
            elif isinstance(action, StartSpeculative):
                self._start_speculative(action.transcript)
            elif isinstance(action, CancelSpeculative):
                await self._cancel_speculative()
            elif isinstance(action, Commit):
                await self._commit(action)
        if ev.kind == "Update" and ev.transcript:
            await store.publish(self.call.record_id, {"kind": "partial", "text": ev.transcript})

    # --- actions ---------------------------------------------------------------------------
    async def _maybe_barge_in(self, ev: TurnEvent) -> None:
        """Barge-in as the turn settings say: off, at once, or only once the caller has kept talking
        for ``barge_in_min_ms`` (a cough or "mm-hm" does not stop the agent)."""
        turn = self.cfg.turn
        if not turn.barge_in:
            return
        if turn.barge_in_min_ms <= 0:
            await self._barge_in(ev)
            return

        async def confirm() -> None:
            started = time.monotonic()
            await asyncio.sleep(turn.barge_in_min_ms / 1000.0)
            voiced = self.voice.last_voiced_at
            if voiced is not None and voiced >= started + turn.barge_in_min_ms / 1000.0 - 0.1 and self.agent_speaking():
                await self._barge_in(ev)

        self.background.spawn(confirm())

    async def _max_length_watch(self) -> None:
        """End the call politely once it is longer than ``max_call_s`` (re-read as the config changes)."""
        started = time.monotonic()
        while True:
            left = started + self.cfg.turn.max_call_s - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(min(left, 5.0))
        log.info("call %s: longest call length (%s s) reached", self.call.call_id, self.cfg.turn.max_call_s)
        self.note(f"ended: call longer than {self.cfg.turn.max_call_s} s")
        try:
            audio = await fillers.clip(self.tts, self.fmt, fillers.TIME_UP, self._offline_tts)
            if audio:
                self.call.clear_playout()
                self.call.play(audio)
        except Exception:  # noqa: BLE001 - hang up regardless
            log.exception("call %s: time-up message could not be spoken", self.call.call_id)
        self.state.hangup_requested = True
        await self.call.hangup("agent")

    async def _barge_in(self, ev: TurnEvent) -> None:
        t0 = time.monotonic()
        if self.state.reply is not None:
            self.state.reply.barged = True
            await self.state.reply.cancel()
        else:
            self.call.clear_playout()
        if self.state.speaking():
            self.state.reply_task.cancel()
        self.state.barge_latencies.append((time.monotonic() - t0) * 1000)
        log.info("call %s: barge-in", self.call.call_id)

    def _offline_tts(self):
        return factory.build_offline_tts()

    def _tts_fallback(self, errors: list[str]):
        chain = factory.fallback_tts_chain(self.cfg)[1:]

        def nxt():
            while chain:
                provider, voice = chain.pop(0)
                try:
                    self.tts = factory.build_tts_for(provider, voice)
                    self.tts_key = (provider, voice)
                    return self.tts
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"tts {provider}: {exc}")
            return None

        return nxt

    async def goodbye(self, reason: str) -> None:
        """Nothing can serve the call any more: say so in whatever voice works, then hang up."""
        log.error("call %s: ending the call (%s)", self.call.call_id, reason)
        self.note(f"ended: {reason}")
        try:
            audio = await fillers.clip(self.tts, self.fmt, fillers.GOODBYE, self._offline_tts)
            if audio:
                self.call.clear_playout()
                self.call.play(audio)
        except Exception:  # noqa: BLE001 - hang up regardless
            log.exception("call %s: goodbye could not be spoken", self.call.call_id)
        self.state.hangup_requested = True
        await self.call.hangup("error")

    async def _speak(self, text: str, render_clips: bool = False) -> None:
        reply = SpokenReply(self.call, self.tts, self.fmt, self._tts_fallback([]), [])
        self.state.reply = reply
        try:
            await reply.push(text)
            await reply.finish()
            if render_clips:  # the greeting is queued: render the filler clips while it plays
                self.background.spawn(fillers.render_clips(self.tts, self.fmt))
            await reply.wait_played()
        except asyncio.CancelledError:
            reply.cancelled = True
