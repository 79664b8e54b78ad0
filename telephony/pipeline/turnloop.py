"""The turn loop of ``VoicePipelineAgent`` (a mixin): from a committed caller turn to the spoken,
recorded reply — speculative LLM requests started on EagerEndOfTurn, the per-turn config refresh,
LLM rounds with tool calls (telephony.actions.session), the filler/apology deadlines, and the Turn
row with its latency waterfall. Kept apart from agent.py, which sets the call up and routes its
inputs (audio, STT events, DTMF, hang-up) to this loop."""

from __future__ import annotations

import asyncio
import logging

from aioptions.providers import factory
from aioptions.providers.base import LLMError
from telephony.actions import summary
from telephony.actions.session import MAX_ROUNDS

from . import fillers, store
from .callstate import TurnTimes
from .chunker import SpeakableChunker
from .fillers import TurnDeadlines
from .llmflow import LLMChainExhausted, Speculation, llm_deltas
from .speech import SpokenReply
from .turns import Commit

log = logging.getLogger("telephony.pipeline")


def _delta_ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round((b - a) * 1000.0, 1)


class TurnLoop:
    """Turn handling: the call's state is ``self.state`` (callstate.CallState); cfg, tts, tools are the agent's."""

    def _messages(self, user_text: str) -> list[dict]:
        return [*self.state.history, {"role": "user", "content": user_text}]

    def _start_speculative(self, transcript: str) -> None:
        spec = Speculation(transcript, self.open_stream(self.cfg.llm_provider, self.cfg.llm_model,
                                                         self._messages(transcript)))

        async def prefetch() -> None:  # text only: nothing is spoken or stored speculatively
            try:
                async for d in spec.stream:
                    spec.buffered.append(d)
                    spec.grew.set()
            except LLMError:
                pass
            finally:
                spec.grew.set()  # ended (or failed): the promoted turn stops waiting for more

        self.state.spec = spec
        self.state.spec_task = asyncio.create_task(prefetch())

    async def _cancel_speculative(self) -> None:
        spec, task = self.state.take_speculation()
        if spec is not None:
            await spec.stream.cancel()
            if task is not None:
                task.cancel()

    async def _commit(self, action: Commit) -> None:
        if self.state.speaking():
            if self.state.reply is not None:
                await self.state.reply.cancel()
            self.state.reply_task.cancel()
        spec, spec_task = self.state.take_speculation()
        if not action.promote:  # the machine cancelled it already (CancelSpeculative) or there was none
            spec = spec_task = None
        # the deadlines start at the end of speech, before anything else of the turn runs
        turn = self.cfg.turn
        deadlines = TurnDeadlines(self.voice.speech_end(action.event), self.clock, turn.filler_ms / 1000.0,
                                  turn.apology_ms / 1000.0)
        self.state.reply_task = asyncio.create_task(self._turn(action, spec, spec_task, deadlines))

    # --- a turn ----------------------------------------------------------------------------
    async def _refresh_config(self) -> None:
        try:
            task = self.state.cfg_task or asyncio.create_task(store.resolve_config(self.call.campaign_id))
            self.campaign, self.cfg = await task
        except Exception:  # noqa: BLE001 - keep the previous config rather than fail the turn
            log.exception("config refresh failed")
        self.state.cfg_task = None
        key = (self.cfg.tts_provider, self.cfg.voice_id)
        if key != self.tts_key:
            old = self.tts
            self.tts = self.warm_tts.pop(key, None) or factory.build_tts(self.cfg)
            self.tts_key = key
            self.background.spawn(old.aclose())  # the old voice closes beside the turn, owned by the call
        self.machine.eager_enabled = self.cfg.turn.eager_eot_threshold is not None
        await self.live.apply_turn(self.cfg.turn)

    async def _turn(self, action: Commit, spec, spec_task, deadlines: TurnDeadlines) -> None:
        errors: list[str] = [*self.state.notes, *self.stt.take_faults()]
        self.state.notes.clear()
        times = TurnTimes(self.state.turn_index, action.event, deadlines.speech_end, action.transcript, action.eager,
                          errors, (self.cfg.llm_provider, self.cfg.llm_model))
        self.state.turn_index += 1
        filler_task = None
        await self._refresh_config()
        await self.tools.refresh()
        times.llm_model = (self.cfg.llm_provider, self.cfg.llm_model)
        speech_end = deadlines.speech_end
        user_text = action.transcript
        messages = self._messages(user_text)
        self.state.history.append({"role": "user", "content": user_text})
        reply = SpokenReply(self.call, self.tts, self.fmt, self._tts_fallback(errors), errors)
        self.state.reply = reply
        chunker = SpeakableChunker()
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
                    if times.llm_requested is None:
                        times.llm_requested, times.llm_first = stream.result.requested_at, stream.result.first_token_at
                        times.llm_model = model
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
            self.state.history += tool_messages
            self.state.history.append({"role": "assistant", "content": heard or "(interrupted)"})
            await self._record(times, reply, heard)
            await self.tools.save(self.call.record_id, times.index)
        asked = self.tools.requests
        if asked.transfer_to and not reply.cancelled:
            said = await self.tools.transfer(asked.transfer_to, self.note, self._speak, mode=asked.transfer_mode,
                                             brief=self._brief)
            if said:  # the model must know the caller is still here, and why
                self.state.history.append({"role": "assistant", "content": said})
        elif (chunker.hangup or asked.hangup) and not reply.cancelled:
            self.state.hangup_requested = True
            await self.call.hangup("agent")


    async def _brief(self, leg) -> None:
        """Warm transfer: the call so far, summed up (LLM, else a template: works offline), spoken
        to the target's leg in the agent's voice; returns once it has played."""
        llm = self.llm_client(self.cfg.llm_provider, self.cfg.llm_model)
        text, how = await summary.summarise(self.state.history, llm, self.cfg.llm_model)
        self.note(f"warm transfer: summary ({how}): {text[:200]}")
        reply = SpokenReply(leg, self.tts, self.fmt, self._tts_fallback([]), [])
        await reply.push(text)
        await reply.finish()
        await reply.wait_played()

    async def _record(self, t: TurnTimes, reply: SpokenReply, heard: str) -> None:
        """The Turn row: every instant as ms after the end of the caller's speech (the waterfall)."""
        def ms(at):
            return None if at is None else round((at - t.speech_end) * 1000.0, 1)

        fields = {
            "index": t.index, "user_text": t.user_text, "agent_text": heard, "barge_in": reply.barged,
            "eager": t.eager, "llm_provider": t.llm_model[0], "llm_model": t.llm_model[1],
            "tts_provider": reply.tts.name, "voice_id": reply.tts.voice_id,
            "eot_received_ms": ms(t.event.received_at), "llm_request_ms": ms(t.llm_requested),
            "llm_first_token_ms": ms(t.llm_first), "tts_request_ms": ms(reply.tts_request_at),
            "tts_first_audio_ms": ms(reply.tts_first_audio_at), "first_rtp_ms": ms(reply.first_rtp_at),
            "mouth_to_ear_ms": ms(reply.first_rtp_at),
            "llm_ttft_ms": _delta_ms(t.llm_requested, t.llm_first),
            "tts_ttfb_ms": _delta_ms(reply.tts_request_at, reply.tts_first_audio_at),
            "errors": t.errors,
        }
        self.state.turns.append(fields)
        log.info("call %s turn %d: %r -> %r (mouth-to-ear %s ms%s)", self.call.call_id, t.index, t.user_text, heard,
                 fields["mouth_to_ear_ms"], ", barge-in" if reply.barged else "")
        await store.save_turn(self.call.record_id, fields)
