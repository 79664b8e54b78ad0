"""GroqLLM / OpenAILLM through the official SDKs against the fake OpenAI-compatible server."""

import asyncio
import time

import pytest

from aioptions.fakes.openai_server import ECHO, FakeOpenAIServer
from aioptions.providers.base import LLMError
from aioptions.providers.llm import GroqLLM, OpenAILLM
from tests.eventually import eventually

MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
_MADE: list = []


@pytest.fixture(autouse=True)
async def _close_clients():
    """Close every SDK client on the test's own loop (else httpx closes them after the loop is gone)."""
    yield
    while _MADE:
        await _MADE.pop().aclose()


def track(llm):
    _MADE.append(llm)
    return llm


def clients(srv, **kw):
    return [
        track(GroqLLM(api_key="k", model="openai/gpt-oss-20b", base_url=srv.groq_base_url, **kw)),
        track(OpenAILLM(api_key="k", model="gpt-4o-mini", base_url=srv.openai_base_url, **kw)),
    ]


async def drain(stream) -> list[str]:
    return [d async for d in stream]


async def test_streaming_deltas_ttft_usage_and_request_shape():
    async with FakeOpenAIServer(reply="Sure, Tuesday at three works.", ttft_ms=120, api_key="k") as srv:
        for llm in clients(srv):
            s = llm.stream(MSGS, temperature=0.3, max_tokens=50)
            deltas = await drain(s)
            r = s.result
            assert deltas == ["Sure, ", "Tuesday ", "at ", "three ", "works."] and r.text == "".join(deltas)
            assert 110 <= r.ttft_ms < 400 and r.requested_at < r.first_token_at < r.finished_at
            assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (4, 5) and r.finish_reason == "stop"
            await llm.aclose()
        groq_req, openai_req = srv.chat_requests()
        assert (
            groq_req["path"] == "/openai/v1/chat/completions" and openai_req["path"] == "/v1/chat/completions"
        )
        assert groq_req["headers"]["authorization"] == "Bearer k"
        g = groq_req["json"]
        assert g["messages"] == MSGS and g["model"] == "openai/gpt-oss-20b" and g["stream"] is True
        assert g["reasoning_effort"] == "low" and g["include_reasoning"] is False
        assert g["max_completion_tokens"] == 50 and g["temperature"] == 0.3 and "max_tokens" not in g
        assert "stream_options" not in g  # Groq reports usage in x_groq
        o = openai_req["json"]
        assert o["stream_options"] == {"include_usage": True} and o["temperature"] == 0.3
        assert "reasoning_effort" not in o and "include_reasoning" not in o


async def test_reasoning_deltas_are_never_yielded():
    async with FakeOpenAIServer(
        reply="Yes.", reasoning="the user greets me so I greet back", ttft_ms=5
    ) as srv:
        llm = track(GroqLLM(api_key="k", model="qwen/qwen3-32b", base_url=srv.groq_base_url))
        s = llm.stream(MSGS)
        assert await drain(s) == ["Yes."] and s.result.text == "Yes."
        assert "include_reasoning" not in srv.chat_requests()[0]["json"]  # only gpt-oss gets it


async def test_openai_reasoning_models_get_no_temperature_and_minimal_effort():
    async with FakeOpenAIServer(ttft_ms=5) as srv:
        llm = track(OpenAILLM(api_key="k", model="gpt-5-mini", base_url=srv.openai_base_url))
        await drain(llm.stream(MSGS, temperature=0.6))
        body = srv.chat_requests()[0]["json"]
        assert "temperature" not in body and body["reasoning_effort"] == "minimal"


@pytest.mark.parametrize(
    "fail,kind,status",
    [
        (429, "rate_limit", 429),
        (500, "server", 500),
        (404, "not_found", 404),
        ("decommissioned", "not_found", 400),
        ("stream_error", "server", None),
    ],
)
async def test_errors_are_typed(fail, kind, status):
    async with FakeOpenAIServer(fail=fail, ttft_ms=5) as srv:
        for llm in clients(srv):
            got = []
            with pytest.raises(LLMError) as err:
                async for d in llm.stream(MSGS):
                    got.append(d)
            assert err.value.kind == kind and err.value.status == status and err.value.provider == llm.name
            assert got == (["Sure, "] if fail == "stream_error" else [])  # what came before the error
        assert len(srv.chat_requests()) == 2  # max_retries=0: no hidden retries


async def test_unknown_model_and_bad_key():
    async with FakeOpenAIServer(api_key="right") as srv:
        with pytest.raises(LLMError) as err:
            await drain(
                track(
                    GroqLLM(api_key="wrong", model="openai/gpt-oss-20b", base_url=srv.groq_base_url)
                ).stream(MSGS)
            )
        assert err.value.kind == "auth" and err.value.status == 401
        with pytest.raises(LLMError) as err:
            await track(
                OpenAILLM(api_key="wrong", model="gpt-4o-mini", base_url=srv.openai_base_url)
            ).list_models()
        assert err.value.kind == "auth"
        with pytest.raises(LLMError) as err:
            await drain(
                track(
                    GroqLLM(api_key="right", model="llama-3.3-70b-versatile", base_url=srv.groq_base_url)
                ).stream(MSGS)
            )
        assert err.value.kind == "not_found" and "llama-3.3-70b-versatile" in str(err.value)
    with pytest.raises(LLMError) as err:
        GroqLLM(api_key="", model="openai/gpt-oss-20b")
    assert err.value.kind == "auth"


async def test_explicit_retries_are_the_sdks_and_honour_retry_after():
    async with FakeOpenAIServer(fail=[429, None], ttft_ms=5) as srv:
        llm = track(
            GroqLLM(api_key="k", model="openai/gpt-oss-20b", base_url=srv.groq_base_url, max_retries=1)
        )
        assert "".join(await drain(llm.stream(MSGS))) == "Sure, Tuesday at three works."
        first, second = srv.chat_requests()
        assert second["at"] - first["at"] >= 0.9  # retry-after: 1 (a lower bound: load only adds to it)


async def test_timeout_and_connection_refused():
    async with FakeOpenAIServer(fail="hang") as srv:
        for llm in clients(srv, timeout=0.4):
            t0 = time.monotonic()
            with pytest.raises(LLMError) as err:  # the server never answers: only our 0.4 s timeout ends it
                await asyncio.wait_for(drain(llm.stream(MSGS)), 30)
            assert err.value.kind == "timeout" and time.monotonic() - t0 >= 0.35  # not before the timeout
    with pytest.raises(LLMError) as err:
        await drain(
            track(OpenAILLM(api_key="k", model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1")).stream(MSGS)
        )
    assert err.value.kind == "connection"


async def test_cancel_mid_stream_stops_the_server_stream():
    async with FakeOpenAIServer(reply=" ".join(["word"] * 200), ttft_ms=10, token_ms=20) as srv:
        for llm in clients(srv):
            s = llm.stream(MSGS)
            got = []
            async for d in s:
                got.append(d)
                if len(got) == 3:
                    await s.cancel()
            assert len(got) == 3 and s.result.text == "word " * 3 and s.result.finished_at is not None
        await eventually(lambda: srv.cancelled == 2)  # the server saw both streams cut off and stopped writing


async def test_cancel_from_another_task_while_waiting_for_the_first_token():
    async with FakeOpenAIServer(fail="hang") as srv:
        s = clients(srv)[0].stream(MSGS)
        consumer = asyncio.create_task(drain(s))
        await eventually(lambda: srv.chat_requests())  # the request is in; the server will never answer
        await s.cancel()
        assert await asyncio.wait_for(consumer, 10) == []  # so only the cancel can have ended it


async def test_cancel_after_the_headers_but_before_the_reader_resumes_closes_the_response():
    """The window CI hit under load: the request's future is done, the iterating task is scheduled
    but has not run. asyncio runs ready callbacks in order, so one ``sleep(0)`` after opening the
    gate lets the request finish and brings the test back before the reader resumes."""
    gate: asyncio.Future = asyncio.get_running_loop().create_future()
    never = asyncio.Event()

    class Response:
        closed = False

        def __aiter__(self):
            return self

        async def __anext__(self):
            await never.wait()  # a server that sent headers and then nothing

        async def close(self):
            self.closed = True

    response = Response()

    class Completions:
        async def create(self, **_):
            await gate
            return response

    async with FakeOpenAIServer() as srv:
        llm = clients(srv)[1]
        llm.client = type("C", (), {"chat": type("Ch", (), {"completions": Completions()})()})()
        s = llm.stream(MSGS)
        consumer = asyncio.create_task(drain(s))
        await eventually(lambda: s._create is not None)
        gate.set_result(None)
        await asyncio.sleep(0)
        assert s._create.done() and not consumer.done()
        await s.cancel()
        assert response.closed  # closed by cancel(), not left to the reader
        assert await asyncio.wait_for(consumer, 10) == []  # and the reader never iterates it


async def test_cancel_before_iteration_sends_nothing_and_a_stream_iterates_once():
    async with FakeOpenAIServer(ttft_ms=5) as srv:
        llm = clients(srv)[0]
        s = llm.stream(MSGS)
        await s.cancel()
        assert await drain(s) == [] and srv.chat_requests() == []
        s = llm.stream(MSGS)
        await drain(s)
        with pytest.raises(RuntimeError):
            await drain(s)


async def test_keep_alive_reuses_the_prewarmed_connection():
    async with FakeOpenAIServer(ttft_ms=5, reply=ECHO) as srv:
        llm = clients(srv)[0]
        await llm.list_models()  # the pipeline's pre-warm
        assert "".join(await drain(llm.stream(MSGS))) == "hello there"  # echo of the last user message
        assert "".join(await drain(llm.stream([{"role": "user", "content": "again"}]))) == "again"
        assert srv.connections == 1


async def test_list_models_for_both_providers():
    async with FakeOpenAIServer(models=["openai/gpt-oss-20b", "gpt-4o-mini"]) as srv:
        for llm in clients(srv):
            assert await llm.list_models() == ["openai/gpt-oss-20b", "gpt-4o-mini"]
        assert [r["path"] for r in srv.requests] == ["/openai/v1/models", "/v1/models"]


async def test_groq_reasoning_fields_follow_the_docs_per_model():
    async with FakeOpenAIServer(reply="Yes.", ttft_ms=5) as srv:
        for model in ("openai/gpt-oss-20b", "openai/gpt-oss-120b", "qwen/qwen3-32b"):
            llm = track(GroqLLM(api_key="k", model=model, base_url=srv.groq_base_url))
            assert await drain(llm.stream(MSGS)) == ["Yes."]  # the fake answers 400 to undocumented fields
        oss, oss120, qwen = (r["json"] for r in srv.chat_requests())
        assert (oss["reasoning_effort"], oss["include_reasoning"]) == ("low", False) and "reasoning_format" not in oss
        assert oss120["reasoning_effort"] == "low"
        assert (qwen["reasoning_format"], qwen["reasoning_effort"]) == ("hidden", "none")
        assert "include_reasoning" not in qwen  # mutually exclusive with reasoning_format


async def test_qwen_think_text_is_requested_hidden_so_none_arrives():
    """Groq's default for Qwen3 is raw <think> in content; our request asks for none of it."""
    async with FakeOpenAIServer(reply="Sure, Tuesday works.", reasoning="the user wants Tuesday", ttft_ms=5) as srv:
        llm = track(GroqLLM(api_key="k", model="qwen/qwen3-32b", base_url=srv.groq_base_url))
        s = llm.stream(MSGS)
        assert "".join(await drain(s)) == "Sure, Tuesday works." and s.think.removed_chars == 0


@pytest.mark.parametrize("model", ["qwen/qwen3-32b", "openai/gpt-oss-20b"])
async def test_think_blocks_in_content_are_stripped_across_chunk_boundaries(model):
    async with FakeOpenAIServer(reply="Sure, Tuesday works.", reasoning="the user <wants> Tuesday, so say yes",
                                think_in_content=True, ttft_ms=5) as srv:
        llm = track(GroqLLM(api_key="k", model=model, base_url=srv.groq_base_url))
        s = llm.stream(MSGS)
        deltas = await drain(s)
        assert "".join(deltas) == "Sure, Tuesday works." == s.result.text
        assert all("think" not in d and "<" not in d for d in deltas)
        assert s.think.removed_chars > 30
        assert s.result.first_token_at is not None  # TTFT counts the first speakable token only


def test_strip_think_non_streamed_and_unclosed():
    from aioptions.providers.reasoning import strip_think

    assert strip_think("<think>a\nb</think>\n\nHello. <think>c</think>Bye.") == "Hello. Bye."
    assert strip_think("Hello <think>never closed") == "Hello "
    assert strip_think("a < b, <thin") == "a < b, <thin"
