"""VoicePipelineAgent through the real provider clients against the fake servers (fixed latencies),
with an in-memory call that paces RTP-like frames every 20 ms."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from aioptions import services
from telephony.media.memcall import FakeCall
from telephony.models import Call, Turn
from telephony.pipeline.agent import VoicePipelineAgent

# real-time calls (paced media, fake providers with real delays): not in the fast default
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
EOT_MS, TTFT_MS, TTFB_MS = 250, 300, 90


async def run_call(call, seconds: float, agent=None):
    agent = agent or VoicePipelineAgent(call)
    task = asyncio.create_task(agent.run(call))
    await asyncio.sleep(seconds)
    call._end("bye")
    await asyncio.wait_for(task, 10)
    return agent


async def turns(call_row):
    return await sync_to_async(lambda: list(Turn.objects.filter(call=call_row).order_by("index")))()


async def test_turn_waterfall_is_consistent_and_measured_at_the_wire(cloud, call_row, campaign):
    await cloud.start(flux={"utterances": [(3.0, 3.8, "can I book for Tuesday")], "eot_delay_ms": EOT_MS},
                      llm={"reply": "Yes, Tuesday at three works. Anything else?", "ttft_ms": TTFT_MS})
    try:
        call = FakeCall(record_id=call_row.pk, campaign_id=campaign.pk)
        await run_call(call, 8.0)
    finally:
        await cloud.stop()
    rows = await turns(call_row)
    assert len(rows) == 1
    print({k: getattr(rows[0], k) for k in Turn.WATERFALL})
    t = rows[0]
    assert t.user_text == "can I book for Tuesday" and t.agent_text.startswith("Yes, Tuesday")
    stages = [t.eot_received_ms, t.llm_request_ms, t.llm_first_token_ms, t.tts_request_ms, t.tts_first_audio_ms,
              t.first_rtp_ms]
    assert all(s is not None for s in stages) and stages == sorted(stages), stages
    assert t.mouth_to_ear_ms == t.first_rtp_ms
    expected = EOT_MS + TTFT_MS + TTFB_MS
    # measured where the caller hears it: the fakes' fixed delays (EOT, TTFT, TTFB) all sit inside it.
    # (How little the bridge adds on top is a number for the benchmarks, not a window for a test.)
    assert t.mouth_to_ear_ms >= expected - 20, t.mouth_to_ear_ms
    assert t.llm_ttft_ms >= TTFT_MS - 5 and t.tts_ttfb_ms >= TTFB_MS - 5, (t.llm_ttft_ms, t.tts_ttfb_ms)
    assert (t.llm_provider, t.llm_model, t.tts_provider, t.eager) == ("groq", "openai/gpt-oss-20b", "cartesia", "off")
    # the greeting played first, in the campaign's (global) voice
    first_ctx = next(iter(cloud.tts.contexts.values()))
    assert "".join(first_ctx.transcripts).strip() == "Hi, this is Acme."
    call_after = await sync_to_async(Call.objects.get)(pk=call_row.pk)
    assert call_after.turns_count == 1 and call_after.mouth_to_ear_p50_ms == t.mouth_to_ear_ms
    req = cloud.llm.chat_requests()[0]["json"]["messages"]
    assert req[0]["role"] == "system" and "Acme" in req[0]["content"] and req[-1]["content"] == t.user_text


async def test_barge_in_silences_the_agent_quickly_and_keeps_only_heard_text(cloud, call_row, campaign):
    long_reply = "Let me tell you about all our opening hours and services. " * 6
    await cloud.start(flux={"utterances": [(2.5, 3.0, "tell me everything"), (6.0, 6.6, "stop please")],
                            "eot_delay_ms": EOT_MS},
                      llm={"reply": [long_reply, "Sure."], "ttft_ms": 100}, tts={"ms_per_char": 60, "speedup": 1.0})
    try:
        call = FakeCall(record_id=call_row.pk, campaign_id=campaign.pk)
        agent = await run_call(call, 9.0)
    finally:
        await cloud.stop()
    start_events = [e for c in cloud.flux.connections for e in c.sent if e.get("event") == "StartOfTurn"]
    assert len(start_events) == 2
    rows = await turns(call_row)
    first = rows[0]
    assert first.barge_in and 0 < len(first.agent_text) < len(long_reply.strip())
    # time to silence: last agent packet after the barge-in StartOfTurn (audio time 6.0 s) arrived
    assert agent.state.barge_latencies and max(agent.state.barge_latencies) < 50
    agent_times = [t for t, a in call.sent if a]
    barge_audio = 6.0
    barge_wall = call.sent[0][0] + barge_audio + 0.1  # StartOfTurn arrives within ~0.1 s of that audio
    after = [t for t in agent_times if barge_wall < t < barge_wall + 1.5 and t < call.sent[0][0] + 6.6 + 0.25]
    assert not after or after[-1] - barge_wall <= 0.15
    assert any(c.cancelled for c in cloud.tts.contexts.values())


async def test_eager_end_of_turn_hides_llm_time(cloud, call_row, campaign):
    await sync_to_async(services.update_turn)(eager_eot_threshold=0.5)
    await cloud.start(flux={"utterances": [(2.5, 3.2, "book me for Tuesday")], "eot_delay_ms": 600,
                            "eager_lead_ms": 450},
                      llm={"reply": "Done, see you Tuesday.", "ttft_ms": TTFT_MS})
    try:
        call = FakeCall(record_id=call_row.pk, campaign_id=campaign.pk)
        await run_call(call, 6.0)
    finally:
        await cloud.stop()
    t = (await turns(call_row))[0]
    assert t.eager == "hit"
    assert len(cloud.llm.chat_requests()) == 1  # promoted: no second request
    assert "eager_eot_threshold" in cloud.flux.connections[0].query
    # the LLM's time is hidden: its one request went out on EagerEndOfTurn, before EndOfTurn arrived
    # (an order of events, not a time window: the fake sends the two messages in that order)
    assert t.llm_request_ms < t.eot_received_ms, (t.llm_request_ms, t.eot_received_ms)
    assert t.first_rtp_ms > t.eot_received_ms  # and the reply was not spoken before the turn ended


async def test_eager_resumed_cancels_the_speculation(cloud, call_row, campaign):
    await sync_to_async(services.update_turn)(eager_eot_threshold=0.5)
    await cloud.start(flux={"utterances": [(2.5, 3.2, "book me")], "eot_delay_ms": 700, "eager_lead_ms": 500,
                            "resume": True},
                      llm={"reply": "Okay.", "ttft_ms": 400})
    try:
        call = FakeCall(record_id=call_row.pk, campaign_id=campaign.pk)
        await run_call(call, 6.0)
    finally:
        await cloud.stop()
    t = (await turns(call_row))[0]
    assert t.eager == "cancelled"
    assert len(cloud.llm.chat_requests()) == 2 and cloud.llm.cancelled >= 1


async def test_llm_failure_falls_back_and_is_recorded(cloud, call_row, campaign):
    await cloud.start(flux={"utterances": [(2.5, 3.0, "hello")], "eot_delay_ms": EOT_MS},
                      llm={"fail": 429})
    try:
        call = FakeCall(record_id=call_row.pk, campaign_id=campaign.pk)
        await run_call(call, 6.0)
    finally:
        await cloud.stop()
    t = (await turns(call_row))[0]
    assert any("rate_limit" in e for e in t.errors)
    assert t.llm_provider == "offline" and t.agent_text  # the offline script answered: no dead air


async def test_live_voice_change_applies_from_the_next_turn(cloud, call_row, campaign):
    await cloud.start(flux={"utterances": [(2.5, 3.0, "first question"), (6.5, 7.0, "second question")],
                            "eot_delay_ms": EOT_MS},
                      llm={"reply": "Answer.", "ttft_ms": 50})
    try:
        call = FakeCall(record_id=call_row.pk, campaign_id=campaign.pk)
        agent = VoicePipelineAgent(call)
        task = asyncio.create_task(agent.run(call))
        await asyncio.sleep(4.8)
        await sync_to_async(services.update_tts_voice)(provider="cartesia",
                                                       voice_id="228fca29-3a0a-435c-8728-5cb483251068")
        await asyncio.sleep(4.0)
        call._end("bye")
        await asyncio.wait_for(task, 10)
    finally:
        await cloud.stop()
    rows = await turns(call_row)
    assert [r.voice_id for r in rows] == ["f786b574-daa5-4673-aa0c-cbe3e8534c02",
                                          "228fca29-3a0a-435c-8728-5cb483251068"]
    new_voice = [c for c in cloud.tts.contexts.values() if c.voice == "228fca29-3a0a-435c-8728-5cb483251068"]
    assert ["".join(c.transcripts).strip() for c in new_voice if "Answer" in "".join(c.transcripts)] == ["Answer."]
    assert ("tts", "cartesia/228fca29-3a0a-435c-8728-5cb483251068") in agent.live.prewarmed  # warmed at the change


async def test_hangup_marker_says_goodbye_then_hangs_up(cloud, call_row, campaign):
    await cloud.start(flux={"utterances": [(2.5, 3.0, "that's all, bye")], "eot_delay_ms": EOT_MS},
                      llm={"reply": "Thanks for calling, goodbye! [END_CALL]", "ttft_ms": 50})
    try:
        call = FakeCall(record_id=call_row.pk, campaign_id=campaign.pk)
        agent = VoicePipelineAgent(call)
        task = asyncio.create_task(agent.run(call))
        await asyncio.wait_for(call.ended.wait(), 8)
        await asyncio.wait_for(task, 10)
    finally:
        await cloud.stop()
    assert call.end_reason == "agent"
    t = (await turns(call_row))[0]
    assert t.agent_text == "Thanks for calling, goodbye!"
    spoken = " ".join("".join(c.transcripts) for c in cloud.tts.contexts.values())
    assert "END_CALL" not in spoken


async def test_dtmf_reaches_the_llm_as_text(cloud, call_row, campaign):
    await cloud.start(flux={"utterances": []}, llm={"reply": "You chose option five.", "ttft_ms": 20})
    try:
        call = FakeCall(record_id=call_row.pk, campaign_id=campaign.pk)
        agent = VoicePipelineAgent(call)
        task = asyncio.create_task(agent.run(call))
        await asyncio.sleep(2.5)
        call.dtmf("5")
        await asyncio.sleep(1.5)
        call._end("bye")
        await asyncio.wait_for(task, 10)
    finally:
        await cloud.stop()
    assert cloud.llm.chat_requests()[0]["json"]["messages"][-1]["content"] == "[caller pressed 5]"
