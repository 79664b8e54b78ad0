"""Tool calls through the official Groq and OpenAI SDKs: the fake streams ``delta.tool_calls`` the
way both APIs do (arguments split across chunks, several calls, text first), and our stream
assembles them into ``result.tool_calls`` without ever speaking them."""

import json

import pytest

from aioptions.fakes.openai_server import FakeOpenAIServer, ToolCalls
from aioptions.providers.llm import GroqLLM, OpenAILLM

MSGS = [{"role": "user", "content": "book me tuesday"}]
PARAMS = {"type": "object", "properties": {"day": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "book", "description": "Book a slot", "parameters": PARAMS}}]


async def _run(llm):
    s = llm.stream(MSGS, tools=TOOLS)
    deltas = [d async for d in s]
    await llm.aclose()
    return deltas, s.result


@pytest.mark.parametrize("interleave", [False, True])
async def test_tool_calls_assembled_from_fragments_after_text(interleave):
    script = ToolCalls(text="Let me check.", arg_piece=3, interleave=interleave,
                       calls=[("book", {"day": "tuesday", "time": "15:00"}), ("lookup", {"q": "slots"})])
    async with FakeOpenAIServer(reply=script, ttft_ms=5, token_ms=1) as srv:
        for llm in (GroqLLM(api_key="k", model="openai/gpt-oss-20b", base_url=srv.groq_base_url),
                    OpenAILLM(api_key="k", model="gpt-4o-mini", base_url=srv.openai_base_url)):
            deltas, result = await _run(llm)
            assert "".join(deltas) == "Let me check." and result.finish_reason == "tool_calls"
            assert [(c.index, c.name) for c in result.tool_calls] == [(0, "book"), (1, "lookup")]
            assert json.loads(result.tool_calls[0].arguments) == {"day": "tuesday", "time": "15:00"}
            assert json.loads(result.tool_calls[1].arguments) == {"q": "slots"}
            assert all(c.id.startswith("call_") for c in result.tool_calls)
        for req in srv.chat_requests():
            assert req["json"]["tools"] == TOOLS


async def test_no_tools_argument_without_tools():
    async with FakeOpenAIServer(reply="Hi.", ttft_ms=5) as srv:
        llm = OpenAILLM(api_key="k", model="gpt-4o-mini", base_url=srv.openai_base_url)
        s = llm.stream(MSGS)
        assert [d async for d in s] == ["Hi."] and s.result.tool_calls == []
        await llm.aclose()
        assert "tools" not in srv.chat_requests()[0]["json"]
