import asyncio

import pytest

from aioptions.providers.base import LLMError
from aioptions.providers.llm import GroqLLM, OpenAILLM
from tests.fakes.openai_server import FakeOpenAIServer

MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]


def clients(srv):
    return [GroqLLM(api_key="k", model="openai/gpt-oss-20b", base_url=srv.groq_base_url),
            OpenAILLM(api_key="k", model="gpt-4o-mini", base_url=srv.openai_base_url)]


async def test_streaming_ttft_usage_and_request_shape():
    async with FakeOpenAIServer(reply="Sure, Tuesday at three works.", ttft_ms=120, api_key="k") as srv:
        for llm in clients(srv):
            s = llm.stream(MSGS, temperature=0.3, max_tokens=50)
            deltas = [d async for d in s]
            assert "".join(deltas) == "Sure, Tuesday at three works." and len(deltas) == 5
            assert 110 <= s.result.ttft_ms < 400
            assert s.result.usage.completion_tokens == 5 and s.result.finish_reason == "stop"
            await llm.aclose()
        groq_req, openai_req = srv.chat_requests()
        assert groq_req["path"] == "/openai/v1/chat/completions" and openai_req["path"] == "/v1/chat/completions"
        assert groq_req["json"]["reasoning_effort"] == "low" and groq_req["json"]["max_completion_tokens"] == 50
        assert openai_req["json"]["stream_options"] == {"include_usage": True}
        assert groq_req["headers"]["authorization"] == "Bearer k"


@pytest.mark.parametrize("fail,kind", [(429, "rate_limit"), (500, "server"), (404, "not_found"),
                                       ("stream_error", "server")])
async def test_errors_are_typed(fail, kind):
    async with FakeOpenAIServer(fail=fail) as srv:
        for llm in clients(srv):
            with pytest.raises(LLMError) as err:
                [d async for d in llm.stream(MSGS)]
            assert err.value.kind == kind
        assert len(srv.chat_requests()) == 2  # max_retries=0: no hidden retries


async def test_bad_key_and_timeout_and_connection():
    async with FakeOpenAIServer(api_key="right") as srv:
        with pytest.raises(LLMError) as err:
            [d async for d in GroqLLM(api_key="wrong", model="openai/gpt-oss-20b", base_url=srv.groq_base_url)
             .stream(MSGS)]
        assert err.value.kind == "auth"
    async with FakeOpenAIServer(fail="hang") as srv:
        llm = OpenAILLM(api_key="k", model="gpt-4o-mini", base_url=srv.openai_base_url, timeout=0.5)
        with pytest.raises(LLMError) as err:
            [d async for d in llm.stream(MSGS)]
        assert err.value.kind == "timeout"
    with pytest.raises(LLMError) as err:
        [d async for d in OpenAILLM(api_key="k", model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1").stream(MSGS)]
    assert err.value.kind == "connection"


async def test_cancel_mid_stream_stops_the_server_stream():
    async with FakeOpenAIServer(reply=" ".join(["word"] * 200), ttft_ms=10, token_ms=20) as srv:
        llm = clients(srv)[0]
        s = llm.stream(MSGS)
        got = []
        async for d in s:
            got.append(d)
            if len(got) == 3:
                await s.cancel()
        assert len(got) == 3
        await asyncio.sleep(0.2)
        assert srv.cancelled == 1


async def test_list_models_marks_what_is_served():
    async with FakeOpenAIServer(models=["openai/gpt-oss-20b"]) as srv:
        assert await clients(srv)[0].list_models() == ["openai/gpt-oss-20b"]
