"""VoicePipelineAgent: one call's conversation — STT events drive turns, replies stream through
LLM -> speakable pieces -> TTS -> paced RTP, every turn records its waterfall at the wire."""

from __future__ import annotations

import asyncio
import collections
import logging
import time

from django.conf import settings

from aioptions.providers import factory
from aioptions.providers.base import ALAW_8K, MULAW_8K, LLMError, STTError, TurnEvent
from telephony.media.contract import DtmfEvent, HangupEvent

from . import store
from .chunker import SpeakableChunker
from .speech import SpokenReply
from .turns import BargeIn, CancelSpeculative, Commit, StartSpeculative, TurnMachine

log = logging.getLogger("telephony.pipeline")
VOICE_RULES = ("\nSpeak in short, plain sentences for a phone call: no lists, no markdown. When the caller is "
               "done, say a short goodbye and end your reply with [END_CALL].")
APOLOGY = "Sorry, one moment."


def _delta_ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round((b - a) * 1000.0, 1)


class VoicePipelineAgent:
    def __init__(self, call, options: dict | None = None) -> None:
        self.call = call
        self.options = options or {}
        self.history: list[dict] = []
        self.turn_index = 0
        self.reply_task: asyncio.Task | None = None
        self.reply: SpokenReply | None = None
        self.spec: tuple[str, object, list[str]] | None = None  # (transcript, stream, buffered deltas)
        self.spec_task: asyncio.Task | None = None
        self._frame_times: collections.deque[float] = collections.deque(maxlen=3000)  # 60 s of 20 ms frames
        self._frames_sent = 0
        self._cfg_task: asyncio.Task | None = None
        self.barge_latencies: list[float] = []
        self.turns: list[dict] = []
        self._hangup_requested = False
        self._llms: dict[tuple[str, str], object] = {}  # SDK clients are costly to build: one per model per call

    # --- setup -----------------------------------------------------------------------------
    async def run(self, call) -> None:
        self.campaign, self.cfg = await store.resolve_config(call.campaign_id)
        self.fmt = MULAW_8K if call.codec == "PCMU" else ALAW_8K
        self.tts = factory.build_tts(self.cfg)
        self._tts_key = (self.cfg.tts_provider, self.cfg.voice_id)
        system = (self.campaign.system_prompt if self.campaign else "You are a helpful phone agent.") + VOICE_RULES
        self.history = [{"role": "system", "content": system}]
        greeting = (self.campaign.greeting if self.campaign else "") or "Hello, how can I help you?"
        self.machine = TurnMachine(eager_enabled=self.cfg.turn.eager_eot_threshold is not None)
        asyncio.create_task(self._prewarm_llm())
        try:
            self.stt = await self._open_stt()
        except STTError as exc:
            log.error("call %s: STT unavailable (%s); hanging up", call.call_id, exc)
            await call.hangup("error")
            return
        self.history.append({"role": "assistant", "content": greeting})
        self.reply_task = asyncio.create_task(self._speak(greeting))
        tasks = [asyncio.create_task(self._pump_audio()), asyncio.create_task(self._stt_loop()),
                 asyncio.create_task(self._call_events())]
        try:
            await tasks[2]  # ends with the hang-up
        finally:
            pending = [t for t in tasks + [self.reply_task, self.spec_task] if t is not None and not t.done()]
            for t in pending:
                t.cancel()
            if pending:  # let a cut-off reply record its turn before the call summary is computed
                await asyncio.wait(pending, timeout=1.0)
            await self._cleanup()

    async def _prewarm_llm(self) -> None:
        """Build the LLM client and make one cheap request (GET /models) while the greeting plays, so
        the first turn does not pay for TLS/HTTP connection setup and first-use code paths."""
        try:
            await asyncio.wait_for(self._llm(self.cfg.llm_provider, self.cfg.llm_model).list_models(), 3)
        except Exception:  # noqa: BLE001 - only an optimisation
            pass

    async def _open_stt(self):
        turn = self.cfg.turn
        try:
            return await factory.build_stt(self.cfg).open(
                self.fmt, eot_threshold=turn.eot_threshold, eager_eot_threshold=turn.eager_eot_threshold,
                eot_timeout_ms=turn.eot_timeout_ms)
        except STTError as exc:
            if self.cfg.stt_provider == "offline":
                raise
            log.warning("Flux unavailable (%s); using the offline recogniser", exc)
            from aioptions.providers.offline_stt import OfflineSTT

            return await OfflineSTT().open(self.fmt)

    async def _cleanup(self) -> None:
        """Summary first (it is what the dashboard reads), then close provider connections; the
        bridge gives an ending agent about 2 s, so everything here is bounded."""
        await store.summarise_call(self.call.record_id, self.cfg.llm_model, self.cfg.voice_id)
        closers = [self.tts.aclose(), *(llm.aclose() for llm in self._llms.values())]
        if getattr(self, "stt", None) is not None:
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
            self._frame_times.append(time.monotonic())
            self._frames_sent += 1
            await self.stt.send(frame)

    def audio_time_to_monotonic(self, t: float) -> float | None:
        """Map a time on the STT audio clock to when that audio reached us."""
        k = int(t / 0.02)
        first = self._frames_sent - len(self._frame_times)
        if k < first or k >= self._frames_sent:
            return None
        return self._frame_times[k - first] + (t - k * 0.02)

    def agent_speaking(self) -> bool:
        return bool(self.call.playout_queued_bytes) or (self.reply_task is not None and not self.reply_task.done())

    async def _call_events(self) -> None:
        async for ev in self.call.events():
            if isinstance(ev, DtmfEvent):
                fake = TurnEvent("EndOfTurn", self.turn_index, transcript=f"[caller pressed {ev.digit}]",
                                 received_at=ev.at, audio_window_end=self._frames_sent * 0.02)
                await self._handle(fake)
            elif isinstance(ev, HangupEvent):
                return

    async def _stt_loop(self) -> None:
        try:
            async for ev in self.stt.events():
                await self._handle(ev)
        except STTError as exc:
            log.error("call %s: STT failed: %s", self.call.call_id, exc)

    async def _handle(self, ev: TurnEvent) -> None:
        if ev.kind == "StartOfTurn":  # prefetch the config for this turn (live changes apply here)
            self._cfg_task = asyncio.create_task(store.resolve_config(self.call.campaign_id))
        for action in self.machine.on_event(ev, self.agent_speaking()):
            if isinstance(action, BargeIn):
                await self._barge_in(ev)
            elif isinstance(action, StartSpeculative):
                self._start_speculative(action.transcript)
            elif isinstance(action, CancelSpeculative):
                await self._cancel_speculative()
            elif isinstance(action, Commit):
                await self._commit(action)
        if ev.kind == "Update" and ev.transcript:
            await store.publish(self.call.record_id, {"kind": "partial", "text": ev.transcript})

    # --- actions ---------------------------------------------------------------------------
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

    def _llm(self, provider: str, model: str):
        key = (provider, model)
        if key not in self._llms:
            self._llms[key] = factory.build_llm_for(provider, model)
        return self._llms[key]

    def _messages(self, user_text: str) -> list[dict]:
        return [*self.history, {"role": "user", "content": user_text}]

    def _start_speculative(self, transcript: str) -> None:
        stream = self._llm(self.cfg.llm_provider, self.cfg.llm_model).stream(self._messages(transcript))
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
        self.reply_task = asyncio.create_task(self._turn(action, spec, spec_task))

    # --- a turn ----------------------------------------------------------------------------
    async def _refresh_config(self) -> None:
        try:
            task = self._cfg_task or asyncio.create_task(store.resolve_config(self.call.campaign_id))
            self.campaign, self.cfg = await task
        except Exception:  # noqa: BLE001 - keep the previous config rather than fail the turn
            log.exception("config refresh failed")
        self._cfg_task = None
        key = (self.cfg.tts_provider, self.cfg.voice_id)
        if key != self._tts_key:
            old, self.tts = self.tts, factory.build_tts(self.cfg)
            self._tts_key = key
            asyncio.create_task(old.aclose())
        self.machine.eager_enabled = self.cfg.turn.eager_eot_threshold is not None

    async def _turn(self, action: Commit, spec, spec_task) -> None:
        ev = action.event
        index = self.turn_index
        self.turn_index += 1
        errors: list[str] = []
        await self._refresh_config()
        speech_end = self.audio_time_to_monotonic(ev.speech_end) if ev.speech_end else None
        if speech_end is None or speech_end > ev.received_at:
            speech_end = ev.received_at
        user_text = action.transcript
        messages = self._messages(user_text)
        self.history.append({"role": "user", "content": user_text})
        reply = SpokenReply(self.call, self.tts, self.fmt, self._tts_fallback(errors), errors)
        self.reply = reply
        chunker = SpeakableChunker()
        llm_requested = llm_first = None
        used_model = (self.cfg.llm_provider, self.cfg.llm_model)
        apology = asyncio.create_task(self._apology_after(reply, 1.8, errors))
        try:
            async for delta, stream, model in self._llm_deltas(messages, spec, spec_task, errors):
                if llm_requested is None:
                    llm_requested, llm_first = stream.result.requested_at, stream.result.first_token_at
                    used_model = model
                for piece in chunker.feed(delta):
                    await reply.push(piece)
            for piece in chunker.flush():
                await reply.push(piece)
            apology.cancel()
            await reply.finish()
            await reply.wait_played()
        except asyncio.CancelledError:
            apology.cancel()
            reply.cancelled = True
        finally:
            apology.cancel()
            heard = reply.heard_text()
            barge = reply.barged
            self.history.append({"role": "assistant", "content": heard or "(interrupted)"})
            await self._record(index, ev, speech_end, user_text, heard, barge, action.eager, llm_requested,
                               llm_first, reply, used_model, errors)
        if chunker.hangup and not reply.cancelled:
            self._hangup_requested = True
            await self.call.hangup("agent")

    def _tts_fallback(self, errors: list[str]):
        chain = factory.fallback_tts_chain(self.cfg)[1:]

        def nxt():
            while chain:
                provider, voice = chain.pop(0)
                try:
                    self.tts = factory.build_tts_for(provider, voice)
                    self._tts_key = (provider, voice)
                    return self.tts
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"tts {provider}: {exc}")
            return None

        return nxt

    async def _apology_after(self, reply: SpokenReply, delay: float, errors: list[str]) -> None:
        """Never leave the caller in more than ~2 s of dead air while the LLM struggles."""
        await asyncio.sleep(delay)
        if reply.first_rtp_at is None and not reply.cancelled:
            errors.append("llm slow: apology spoken")
            try:
                utt = await self.tts.utterance(self.fmt)
                await utt.push(APOLOGY)
                await utt.finish()
                async for chunk in utt.audio():
                    if reply.enqueued:
                        await utt.cancel()
                        break
                    self.call.play(reply._convert(chunk) if reply._convert else chunk)
            except Exception:  # noqa: BLE001
                pass

    async def _llm_deltas(self, messages, spec, spec_task, errors):
        """Deltas from the promoted speculation or a new request, falling back along the chain
        on error or when the first token takes longer than LLM_FIRST_TOKEN_TIMEOUT_S."""
        timeout = settings.LLM_FIRST_TOKEN_TIMEOUT_S
        if spec is not None:
            _, stream, buffered = spec
            done = 0
            while True:
                while done < len(buffered):
                    done += 1
                    yield buffered[done - 1], stream, (self.cfg.llm_provider, self.cfg.llm_model)
                if spec_task is None or spec_task.done():
                    if done >= len(buffered):
                        if stream.result.text:
                            return
                        break  # the speculation failed: ask again below
                await asyncio.sleep(0.005)
        for provider, model in factory.fallback_llm_chain(self.cfg):
            stream = self._llm(provider, model).stream(messages)
            it = stream.__aiter__()
            try:
                first = await asyncio.wait_for(it.__anext__(), timeout)
            except StopAsyncIteration:
                return
            except (TimeoutError, LLMError) as exc:
                kind = getattr(exc, "kind", "timeout")
                errors.append(f"llm {provider}/{model}: {kind}")
                log.warning("LLM %s/%s failed (%s); trying the next", provider, model, kind)
                await stream.cancel()
                continue
            yield first, stream, (provider, model)
            try:
                async for d in it:
                    yield d, stream, (provider, model)
            except LLMError as exc:
                errors.append(f"llm {provider}/{model} mid-stream: {exc.kind}")
            return

    async def _speak(self, text: str) -> None:
        reply = SpokenReply(self.call, self.tts, self.fmt, self._tts_fallback([]), [])
        self.reply = reply
        try:
            await reply.push(text)
            await reply.finish()
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
