"""VoicePipelineAgent: one call's conversation — STT events drive turns, replies stream through
LLM -> speakable pieces -> TTS -> paced RTP, every turn records its waterfall at the wire.

The jobs around it live in their own modules: supervisor.py (a recogniser that always listens),
live.py (config changes applied mid-call: Flux Configure, prewarming), fillers.py (no dead air:
filler, apology, goodbye timed from the end of speech), llmflow.py (the LLM fallback chain),
voiceclock.py (the bridge's audio clock, the zero of every deadline and waterfall)."""

from __future__ import annotations

import asyncio
import logging
import time

from aioptions.providers import factory
from aioptions.providers.base import ALAW_8K, MULAW_8K, LLMError, STTError, TurnEvent
from telephony.actions.session import MAX_ROUNDS, CallTools
from telephony.media.contract import DtmfEvent, HangupEvent

from . import fillers, store
from .chunker import SpeakableChunker
from .fillers import TurnDeadlines
from .live import LiveConfig
from .llmflow import LLMChainExhausted, llm_deltas
from .speech import SpokenReply
from .supervisor import STTSupervisor
from .turns import BargeIn, CancelSpeculative, Commit, StartSpeculative, TurnMachine
from .voiceclock import VoiceClock

log = logging.getLogger("telephony.pipeline")
VOICE_RULES = ("\nSpeak in short, plain sentences for a phone call: no lists, no markdown. When the caller is "
               "done, say a short goodbye and end your reply with [END_CALL].")


def _delta_ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round((b - a) * 1000.0, 1)


class VoicePipelineAgent:
    def __init__(self, call, options: dict | None = None, clock: fillers.Clock | None = None) -> None:
        self.call = call
        self.options = options or {}
        self.clock = clock or fillers.Clock()
        self.history: list[dict] = []
        self.turn_index = 0
        self.reply_task: asyncio.Task | None = None
        self.reply: SpokenReply | None = None
        self.spec: tuple[str, object, list[str]] | None = None  # (transcript, stream, buffered deltas)
        self.spec_task: asyncio.Task | None = None
        self.voice = VoiceClock(call.codec)
        self._cfg_task: asyncio.Task | None = None
        self.barge_latencies: list[float] = []
        self.turns: list[dict] = []
        self.notes: list[str] = []  # provider faults handled since the last turn, for its Turn row
        self._hangup_requested = False
        self.llm_clients: dict[tuple[str, str], object] = {}  # SDK clients are costly: one per model per call
        self.warm_tts: dict[tuple[str, str], object] = {}  # voices prewarmed after a config change
        self.stt: STTSupervisor | None = None
        self.tools = CallTools(call, self.clock)  # the campaign's tools and built-ins (issue 16)

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
        self.history = [{"role": "system", "content": system}]
        greeting = placed.get("greeting") or (self.campaign.greeting if self.campaign else "") or \
            "Hello, how can I help you?"
        self.machine = TurnMachine(eager_enabled=self.cfg.turn.eager_eot_threshold is not None)
        self.live = LiveConfig(self)
        asyncio.create_task(self.prewarm_llm(self.cfg.llm_provider, self.cfg.llm_model))
        self.stt = STTSupervisor(self.cfg, self.fmt, call.call_id, self.note)
        try:
            await self.stt.open()
        except STTError as exc:
            log.error("call %s: no recogniser at all (%s); hanging up", call.call_id, exc)
            await self.goodbye("stt unavailable")
            await self._cleanup()
            return
        use_context = getattr(self.stt.session, "use_context", None)
        if use_context is not None:  # the offline recogniser: the campaign's words prompt Whisper
            use_context(f"{system.removesuffix(VOICE_RULES)}\n{greeting}")
        self.history.append({"role": "assistant", "content": greeting})
        self.reply_task = asyncio.create_task(self._speak(greeting, render_clips=True))
        tasks = [asyncio.create_task(self._pump_audio()), asyncio.create_task(self.stt.run(self._handle, self.goodbye)),
                 asyncio.create_task(self._call_events()), asyncio.create_task(self.live.run()),
                 asyncio.create_task(self._max_length_watch())]
        try:
            await tasks[2]  # ends with the hang-up
        finally:
            pending = [t for t in tasks + [self.reply_task, self.spec_task] if t is not None and not t.done()]
            for t in pending:
                t.cancel()
            if pending:  # let a cut-off reply record its turn before the call summary is computed
                await asyncio.wait(pending, timeout=1.0)
            await self._cleanup()

    def note(self, text: str) -> None:
        """A provider fault handled mid-call: logged where it happened, recorded on the next Turn row."""
        self.notes.append(text)

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

    async def prewarm_llm(self, provider: str, model: str) -> None:
        """Build the LLM client and make one cheap request (GET /models) before it is needed (call
        start, or a model switched mid-call), so a turn does not pay for connection setup."""
        try:
            await asyncio.wait_for(self.llm_client(provider, model).list_models(), 3)
        except Exception:  # noqa: BLE001 - only an optimisation
            pass

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
        return bool(self.call.playout_queued_bytes) or (self.reply_task is not None and not self.reply_task.done())

    async def _call_events(self) -> None:
        async for ev in self.call.events():
            if isinstance(ev, DtmfEvent):
                fake = TurnEvent("EndOfTurn", self.turn_index, transcript=f"[caller pressed {ev.digit}]",
                                 received_at=ev.at, audio_window_end=self.voice.audio_seconds)
                await self._handle(fake)
            elif isinstance(ev, HangupEvent):
                return

    async def _handle(self, ev: TurnEvent) -> None:
        if ev.kind == "StartOfTurn":  # prefetch the config for this turn (live changes apply here)
            self._cfg_task = asyncio.create_task(store.resolve_config(self.call.campaign_id))
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

        asyncio.create_task(confirm())

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
        self._hangup_requested = True
        await self.call.hangup("agent")

    async def _barge_in(self, ev: TurnEvent) -> None:
        t0 = time.monotonic()
        if self.reply is not None:
            self.reply.barged = True
            await self.reply.cancel()
        else:
            self.call.clear_playout()
        if self.reply_task is not None and not self.reply_task.done():
            self.reply_task.cancel()
        self.barge_latencies.append((time.monotonic() - t0) * 1000)
        log.info("call %s: barge-in", self.call.call_id)

    def _messages(self, user_text: str) -> list[dict]:
        return [*self.history, {"role": "user", "content": user_text}]

    def _start_speculative(self, transcript: str) -> None:
        stream = self.open_stream(self.cfg.llm_provider, self.cfg.llm_model, self._messages(transcript))
        buffered: list[str] = []

        async def prefetch() -> None:  # text only: nothing is spoken or stored speculatively
            try:
                async for d in stream:
                    buffered.append(d)
            except LLMError:
                pass

        self.spec = (transcript, stream, buffered)
        self.spec_task = asyncio.create_task(prefetch())

    async def _cancel_speculative(self) -> None:
        if self.spec is not None:
            await self.spec[1].cancel()
            if self.spec_task is not None:
                self.spec_task.cancel()
        self.spec, self.spec_task = None, None

    async def _commit(self, action: Commit) -> None:
        if self.reply_task is not None and not self.reply_task.done():
            if self.reply is not None:
                await self.reply.cancel()
            self.reply_task.cancel()
        spec = self.spec if action.promote else None
        spec_task = self.spec_task if action.promote else None
        self.spec, self.spec_task = None, None
        # the deadlines start at the end of speech, before anything else of the turn runs
        turn = self.cfg.turn
        deadlines = TurnDeadlines(self.voice.speech_end(action.event), self.clock, turn.filler_ms / 1000.0,
                                  turn.apology_ms / 1000.0)
        self.reply_task = asyncio.create_task(self._turn(action, spec, spec_task, deadlines))

    # --- a turn ----------------------------------------------------------------------------
    async def _refresh_config(self) -> None:
        try:
            task = self._cfg_task or asyncio.create_task(store.resolve_config(self.call.campaign_id))
            self.campaign, self.cfg = await task
        except Exception:  # noqa: BLE001 - keep the previous config rather than fail the turn
            log.exception("config refresh failed")
        self._cfg_task = None
        key = (self.cfg.tts_provider, self.cfg.voice_id)
        if key != self.tts_key:
            old = self.tts
            self.tts = self.warm_tts.pop(key, None) or factory.build_tts(self.cfg)
            self.tts_key = key
            asyncio.create_task(old.aclose())
        self.machine.eager_enabled = self.cfg.turn.eager_eot_threshold is not None
        await self.live.apply_turn(self.cfg.turn)

    async def _turn(self, action: Commit, spec, spec_task, deadlines: TurnDeadlines) -> None:
        ev = action.event
        index = self.turn_index
        self.turn_index += 1
        errors: list[str] = [*self.notes, *self.stt.take_faults()]
        self.notes.clear()
        filler_task = None
        await self._refresh_config()
        await self.tools.refresh()
        speech_end = deadlines.speech_end
        user_text = action.transcript
        messages = self._messages(user_text)
        self.history.append({"role": "user", "content": user_text})
        reply = SpokenReply(self.call, self.tts, self.fmt, self._tts_fallback(errors), errors)
        self.reply = reply
        chunker = SpeakableChunker()
        llm_requested = llm_first = None
        used_model = (self.cfg.llm_provider, self.cfg.llm_model)
        apologised = False

        async def play_clip(text: str) -> bool:
            audio = await fillers.clip(self.tts, self.fmt, text, self._offline_tts)
            if not audio or reply.cancelled or (text == fillers.FILLER and reply.enqueued):
                return False
            reply.play_extra(audio)
            errors.append(f"said {text!r} at {round((self.clock.now() - speech_end) * 1000)} ms")
            return True

        async def apologise() -> None:
            nonlocal apologised
            if not apologised and not reply.enqueued_speech:
                apologised = True
                await play_clip(fillers.APOLOGY)

        async def tool_filler() -> None:  # a tool is slow: say so unless the caller is hearing something
            if not self.call.playout_queued_bytes:
                audio = await fillers.clip(self.tts, self.fmt, fillers.FILLER, self._offline_tts)
                if audio and not reply.cancelled:
                    reply.play_extra(audio)
                    errors.append(f"said {fillers.FILLER!r} while a tool ran")

        filler_task = asyncio.create_task(deadlines.filler_watch(lambda: bool(reply.enqueued),
                                                                 lambda: play_clip(fillers.FILLER)))
        tool_messages: list[dict] = []
        try:
            for rounds in range(MAX_ROUNDS + 1):  # a reply, or tool calls and then a reply built on them
                last = None
                async for delta, stream, model in llm_deltas(self, messages, spec, spec_task, errors, deadlines,
                                                             apologise):
                    last = stream
                    if llm_requested is None:
                        llm_requested, llm_first = stream.result.requested_at, stream.result.first_token_at
                        used_model = model
                    for piece in chunker.feed(delta):
                        await reply.push(piece)
                if last is None or not last.result.tool_calls or rounds == MAX_ROUNDS:
                    break
                filler_task.cancel()
                spec = spec_task = None
                for piece in chunker.flush():  # "Let me check." is said before the tool runs
                    await reply.push(piece)
                extra = await self.tools.run_round(last.result, tool_filler)
                tool_messages += extra
                messages = [*messages, *extra]
            for piece in chunker.flush():
                await reply.push(piece)
            filler_task.cancel()
            await reply.finish()
            await reply.wait_played()
        except LLMChainExhausted:
            errors.append("llm: every provider failed")
            chunker.hangup = True  # nothing can answer: the goodbye below ends the call
            await reply.push(fillers.GOODBYE)
            await reply.finish()
            await reply.wait_played()
        except asyncio.CancelledError:
            reply.cancelled = True
        finally:
            filler_task.cancel()
            heard = reply.heard_text()
            barge = reply.barged
            self.history += tool_messages
            self.history.append({"role": "assistant", "content": heard or "(interrupted)"})
            await self._record(index, ev, speech_end, user_text, heard, barge, action.eager, llm_requested,
                               llm_first, reply, used_model, errors)
            await self.tools.save(self.call.record_id, index)
        asked = self.tools.requests
        if asked.transfer_to and not reply.cancelled:
            await self._transfer(asked.transfer_to)
        elif (chunker.hangup or asked.hangup) and not reply.cancelled:
            self._hangup_requested = True
            await self.call.hangup("agent")

    async def _transfer(self, target: str) -> None:
        """After "putting you through" was heard: REFER, or dial and bridge (telephony.media.transfer)."""
        try:
            await self.call.transfer(target)
        except Exception as exc:  # noqa: BLE001 - the caller stays with the agent
            log.warning("call %s: transfer failed (%s)", self.call.call_id, type(exc).__name__)
            self.note(f"transfer failed: {str(exc)[:120]}")
            await self._speak("Sorry, I could not transfer you. How else can I help?")

    def _offline_tts(self):
        from aioptions import catalog

        return factory.build_tts_for("offline", catalog.OFFLINE_VOICE_ID)

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
        self._hangup_requested = True
        await self.call.hangup("error")

    async def _speak(self, text: str, render_clips: bool = False) -> None:
        reply = SpokenReply(self.call, self.tts, self.fmt, self._tts_fallback([]), [])
        self.reply = reply
        try:
            await reply.push(text)
            await reply.finish()
            if render_clips:  # the greeting is queued: render the filler clips while it plays
                asyncio.create_task(fillers.render_clips(self.tts, self.fmt))
            await reply.wait_played()
        except asyncio.CancelledError:
            reply.cancelled = True

    async def _record(self, index, ev, speech_end, user_text, heard, barge, eager, llm_requested, llm_first, reply,
                      used_model, errors) -> None:
        def ms(t):
            return None if t is None else round((t - speech_end) * 1000.0, 1)

        fields = {
            "index": index, "user_text": user_text, "agent_text": heard, "barge_in": barge, "eager": eager,
            "llm_provider": used_model[0], "llm_model": used_model[1], "tts_provider": reply.tts.name,
            "voice_id": reply.tts.voice_id, "eot_received_ms": ms(ev.received_at), "llm_request_ms": ms(llm_requested),
            "llm_first_token_ms": ms(llm_first), "tts_request_ms": ms(reply.tts_request_at),
            "tts_first_audio_ms": ms(reply.tts_first_audio_at), "first_rtp_ms": ms(reply.first_rtp_at),
            "mouth_to_ear_ms": ms(reply.first_rtp_at),
            "llm_ttft_ms": _delta_ms(llm_requested, llm_first),
            "tts_ttfb_ms": _delta_ms(reply.tts_request_at, reply.tts_first_audio_at),
            "errors": errors,
        }
        self.turns.append(fields)
        log.info("call %s turn %d: %r -> %r (mouth-to-ear %s ms%s)", self.call.call_id, index, user_text, heard,
                 fields["mouth_to_ear_ms"], ", barge-in" if barge else "")
        await store.save_turn(self.call.record_id, fields)
