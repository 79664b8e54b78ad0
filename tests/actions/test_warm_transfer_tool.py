"""The warm half of ``transfer_call`` above the gateway: the tool's ``mode`` argument, the summary
the target hears (the fake Groq server's completion when an LLM is configured; the offline
template from the caller's last turns otherwise, or when the LLM fails), and what the agent tells
the caller when the target did not take the call."""

from __future__ import annotations

import json

from aioptions.fakes.openai_server import FakeOpenAIServer
from aioptions.providers.base import ToolCallRequest
from aioptions.providers.llm import GroqLLM
from campaigns.tools import RuntimeActions
from telephony.actions import summary
from telephony.actions.runner import ToolRunner
from telephony.actions.session import CallTools
from telephony.media.call import TransferFailed

HISTORY = [
    {"role": "system", "content": "You are a receptionist."},
    {"role": "assistant", "content": "Hi, this is Acme."},
    {"role": "user", "content": "I need to move my appointment."},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                           "function": {"name": "lookup", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "{\"slot\": \"Monday\"}"},
    {"role": "assistant", "content": "(interrupted)"},
    {"role": "user", "content": "It is on Monday, can it be Tuesday   afternoon?"},
    {"role": "assistant", "content": "Please hold while I connect you to a colleague."},
]


def test_template_summary_quotes_the_callers_last_turns_only():
    text = summary.template(HISTORY)
    assert text.startswith(summary.OPENING) and text.endswith(summary.CLOSING)
    assert "I need to move my appointment. It is on Monday, can it be Tuesday afternoon?" in text
    assert "receptionist" not in text and "slot" not in text and "Please hold" not in text
    assert "did not say much" in summary.template(HISTORY[:2])
    long = [{"role": "user", "content": "word " * 500}]
    assert len(summary.template(long)) <= summary.MAX_SUMMARY_CHARS


async def test_summary_by_llm_when_configured_template_when_offline_or_failing():
    async with FakeOpenAIServer(reply="Dana wants to move Monday's appointment to Tuesday.", ttft_ms=0) as srv:
        llm = GroqLLM(api_key="k", model="openai/gpt-oss-20b", base_url=srv.groq_base_url, max_retries=0)
        try:
            text, how = await summary.summarise(HISTORY, llm, "openai/gpt-oss-20b")
        finally:
            await llm.aclose()
    assert how == "llm" and "Dana wants to move Monday's appointment to Tuesday." in text
    [req] = srv.chat_requests()
    sent = req["json"]["messages"][1]["content"]
    assert "caller: It is on Monday, can it be Tuesday afternoon?" in sent and "receptionist" not in sent
    assert await summary.summarise(HISTORY, None) == (summary.template(HISTORY), "template")
    async with FakeOpenAIServer(fail=500) as srv:
        llm = GroqLLM(api_key="k", model="openai/gpt-oss-20b", base_url=srv.groq_base_url, max_retries=0)
        try:
            assert await summary.summarise(HISTORY, llm, "openai/gpt-oss-20b") == (summary.template(HISTORY),
                                                                                   "template")
        finally:
            await llm.aclose()


class Call:
    call_id, codec, caller_uri = "c", "PCMU", "sip:+14155552671@h"

    def __init__(self, fail: TransferFailed | None = None) -> None:
        self.fail, self.asked = fail, []

    async def transfer(self, target: str, mode: str = "blind", brief=None) -> str:
        self.asked.append((target, mode, brief))
        if self.fail is not None:
            raise self.fail
        return "bridged"


def runner(call) -> ToolRunner:
    actions = RuntimeActions(campaign_id=None, builtins=["transfer_call"], transfer_targets=["200"], tools=[],
                             secret="s")
    return ToolRunner(call, actions)


async def test_transfer_call_takes_a_mode():
    r = runner(Call())
    spec = next(s for s in r.specs() if s["function"]["name"] == "transfer_call")
    assert spec["function"]["parameters"]["properties"]["mode"]["enum"] == ["blind", "warm"]
    out = await r.run(ToolCallRequest(0, id="1", name="transfer_call", arguments=json.dumps({"target": "200",
                                                                                          "mode": "warm"})))
    assert out.status == "ok" and "hold" in out.content
    assert (r.requests.transfer_to, r.requests.transfer_mode) == ("200", "warm")
    r = runner(Call())
    out = await r.run(ToolCallRequest(0, id="2", name="transfer_call", arguments='{"target": "200", "mode": "x"}'))
    assert out.status == "error" and not r.requests.transfer_to
    out = await r.run(ToolCallRequest(0, id="3", name="transfer_call", arguments='{"target": "200"}'))
    assert out.status == "ok" and r.requests.transfer_mode == "blind"  # the default


async def test_failed_warm_transfer_tells_the_caller_why_and_the_call_goes_on():
    said, notes = [], []

    async def say(text: str) -> None:
        said.append(text)

    async def brief(leg) -> None:
        pass

    for outcome, words in (("no_answer", "did not answer"), ("busy", "busy"), ("hung_up", "hung up"),
                           ("", "could not transfer")):
        call = Call(TransferFailed("nope", outcome))
        tools = CallTools(call)
        text = await tools.transfer("200", notes.append, say, mode="warm", brief=brief)
        assert call.asked == [("200", "warm", brief)] and words in text and said[-1] == text
        assert not tools.transferring  # the caller's turns count again
    assert all("warm transfer failed" in n for n in notes)
    call = Call()
    assert await CallTools(call).transfer("200", notes.append, say) == ""  # bridged: nothing said
    assert call.asked == [("200", "blind", None)]
