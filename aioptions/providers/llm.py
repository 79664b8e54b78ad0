"""Groq (official ``groq`` SDK) and OpenAI (official ``openai`` SDK) streaming chat clients.

Both SDKs are Stainless-generated with the same shapes and exception classes, so one base class
drives either; the subclasses only build the client. Errors become ``LLMError`` with a ``kind`` the
pipeline can act on (fallback model, apology) without parsing messages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx

from . import netpool
from .base import LLM, LLMError, LLMResult, LLMStream, LLMUsage, ToolCallRequest
from .reasoning import ThinkFilter, groq_reasoning_args, openai_reasoning_args


def _map_error(exc: Exception, provider: str) -> LLMError:
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    code = (body.get("code") if isinstance(body, dict) else None) or (
        (body.get("error") or {}).get("code")
        if isinstance(body, dict) and isinstance(body.get("error"), dict)
        else None
    )
    if name == "APITimeoutError" or isinstance(exc, httpx.TimeoutException):
        kind = "timeout"  # the SDK wraps errors before the response; a stalled stream raises httpx's own
    elif name == "APIConnectionError" or isinstance(exc, httpx.TransportError):
        kind = "connection"
    elif status == 429:
        kind = "rate_limit"
    elif status in (401, 403):
        kind = "auth"
    elif status == 404 or code in ("model_not_found", "model_decommissioned"):
        kind = "not_found"
    elif status is not None and status >= 500:
        kind = "server"
    elif status is not None:
        kind = "bad_request"
    else:
        kind = "server"  # an error object inside the stream
    msg = getattr(exc, "message", None) or str(exc)
    return LLMError(f"{provider}: {msg}"[:300], kind=kind, status=status, provider=provider)


class _Stream(LLMStream):
    """One completion. The request starts on the first iteration (``async for``); ``cancel()`` may
    come from any task at any time: before the request (it is never sent), while waiting for the
    response headers (the request is abandoned), or mid-stream (the HTTP response is closed, so the
    server sees the connection go and stops generating)."""

    def __init__(
        self, llm: OpenAICompatibleLLM, messages: list[dict], temperature: float, max_tokens: int,
        tools: list[dict] | None = None,
    ) -> None:
        self.llm = llm
        self.messages = messages
        self.tools = tools or None
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.result = LLMResult(requested_at=time.monotonic())
        self._response = None
        self._create: asyncio.Future | None = None
        self._cancelled = False
        self._started = False
        self.think = ThinkFilter()  # reasoning that arrives inside content is never yielded

    async def __aiter__(self) -> AsyncIterator[str]:
        if self._started:
            raise RuntimeError("an LLM stream can be iterated only once")
        self._started = True
        if self._cancelled:
            return
        llm = self.llm
        self.result.requested_at = time.monotonic()
        try:
            self._create = asyncio.ensure_future(
                llm.client.chat.completions.create(
                    model=llm.model,
                    messages=self.messages,
                    stream=True,
                    **({"tools": self.tools} if self.tools else {}),
                    **llm.request_args(self.temperature, self.max_tokens),
                )
            )
            try:
                self._response = await self._create
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._cancelled and not (task is not None and task.cancelling()):
                    return  # cancel() abandoned the request; our own task was not cancelled
                raise
            if self._cancelled:  # cancel() ran after the headers came but before this task resumed
                return
            async for chunk in self._response:
                if self._cancelled:
                    break
                self._usage(chunk)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason:
                    self.result.finish_reason = choice.finish_reason
                self._tool_fragments(getattr(choice.delta, "tool_calls", None))
                # delta.reasoning is never read; <think> blocks inside content are dropped, so the
                # first token (TTFT, the stall deadline) is the first *speakable* text
                text = self.think.feed(getattr(choice.delta, "content", None) or "")
                if text:
                    yield self._emit(text)
            tail = self.think.flush()
            if tail and not self._cancelled:
                yield self._emit(tail)
        except Exception as exc:  # noqa: BLE001 - every SDK error becomes a typed LLMError
            if self._cancelled:
                return
            if isinstance(exc, LLMError):
                raise
            raise _map_error(exc, llm.name) from exc
        finally:
            self.result.finished_at = time.monotonic()
            await self._close_response()

    def _tool_fragments(self, fragments) -> None:
        """Assemble ``delta.tool_calls``: each fragment names its call by ``index``; the first one
        carries id and function name, later ones append to the JSON ``arguments`` text. Several
        calls may interleave, and text may come before them (both APIs do this)."""
        if not fragments:
            return
        calls = self.result.tool_calls
        for frag in fragments:
            index = getattr(frag, "index", None)
            index = len(calls) if index is None else int(index)
            call = next((c for c in calls if c.index == index), None)
            if call is None:
                if len(calls) >= 16:  # a runaway model: the runner would refuse them anyway
                    continue
                call = ToolCallRequest(index=index)
                calls.append(call)
                if self.result.first_token_at is None:  # the model answered, with an action
                    self.result.first_token_at = time.monotonic()
            if getattr(frag, "id", None):
                call.id = frag.id
            fn = getattr(frag, "function", None)
            if fn is not None:
                if getattr(fn, "name", None) and not call.name:
                    call.name = fn.name[:64]
                if getattr(fn, "arguments", None) and len(call.arguments) < 65536:
                    call.arguments += fn.arguments

    def _emit(self, text: str) -> str:
        if self.result.first_token_at is None:
            self.result.first_token_at = time.monotonic()
        self.result.text += text
        return text

    def _usage(self, chunk) -> None:
        usage = getattr(chunk, "usage", None)
        x_groq = getattr(chunk, "x_groq", None) or (getattr(chunk, "model_extra", None) or {}).get("x_groq")
        if x_groq is not None:  # Groq: usage on the last chunk; an error string when it stopped early
            error = x_groq.get("error") if isinstance(x_groq, dict) else getattr(x_groq, "error", None)
            if error:
                raise LLMError(f"{self.llm.name}: {error}"[:300], kind="server", provider=self.llm.name)
            if usage is None:
                usage = x_groq.get("usage") if isinstance(x_groq, dict) else getattr(x_groq, "usage", None)
        if usage is None:
            return
        get = usage.get if isinstance(usage, dict) else (lambda k, d=0: getattr(usage, k, d))
        self.result.usage = LLMUsage(int(get("prompt_tokens", 0) or 0), int(get("completion_tokens", 0) or 0))

    async def _close_response(self) -> None:
        resp, self._response = self._response, None
        if resp is not None:
            try:
                await resp.close()
            except Exception:  # noqa: BLE001
                pass

    async def cancel(self) -> None:
        self._cancelled = True
        create = self._create
        if create is not None and not create.done():
            create.cancel()
        elif create is not None and self._response is None and not create.cancelled() and create.exception() is None:
            # the request finished but the iterating task has not resumed to take the response:
            # take it here so it is closed now, not left open until that task runs
            self._response = create.result()
        await self._close_response()


def _pooled_http(provider: str, base_url: str) -> httpx.AsyncClient | None:
    """The process's shared HTTP client for this provider when built inside an event loop (a call);
    outside one (a sync command) the SDK makes its own. Without the pool every per-call client built
    its own TLS context on the event loop: ~17 ms of stall per call set-up (issue 18)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return None
    return netpool.http_client(provider, base_url)


class OpenAICompatibleLLM(LLM):
    name = "openai"
    client = None
    supports_tools = True  # the pipeline passes ``tools=`` only to clients that take it

    def __init__(self, *, model: str) -> None:
        self.model = model

    def request_args(self, temperature: float, max_tokens: int) -> dict:
        """Per-model keyword arguments for ``chat.completions.create`` besides model/messages/stream."""
        return {"temperature": temperature, "max_completion_tokens": max_tokens}

    def stream(self, messages: list[dict], *, temperature: float = 0.6, max_tokens: int = 300,
               tools: list[dict] | None = None) -> LLMStream:
        """``tools``: OpenAI function definitions; calls arrive in ``result.tool_calls``."""
        return _Stream(self, messages, temperature, max_tokens, tools)

    async def list_models(self) -> list[str]:
        try:
            page = await self.client.models.list()
            return [m.id for m in page.data]
        except Exception as exc:  # noqa: BLE001
            raise _map_error(exc, self.name) from exc

    async def aclose(self) -> None:
        """Close a client of our own; a pooled HTTP client is shared by every call and stays open."""
        if netpool.is_pooled(getattr(self.client, "_client", None)):
            return
        try:
            await self.client.close()
        except Exception:  # noqa: BLE001
            pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={str(self.client.base_url)!r})"


class GroqLLM(OpenAICompatibleLLM):
    name = "groq"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str = "https://api.groq.com",
        max_retries: int = 0,
        timeout: float = 30.0,
    ) -> None:
        from groq import AsyncGroq

        if not api_key:
            raise LLMError("GROQ_API_KEY is not set", kind="auth", provider="groq")
        super().__init__(model=model)
        self.client = AsyncGroq(api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout,
                                http_client=_pooled_http("groq", base_url))

    def request_args(self, temperature: float, max_tokens: int) -> dict:
        # reasoning models: least reasoning latency and no reasoning text (see reasoning.py)
        return {**super().request_args(temperature, max_tokens), **groq_reasoning_args(self.model)}


class OpenAILLM(OpenAICompatibleLLM):
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str = "https://api.openai.com/v1",
        max_retries: int = 0,
        timeout: float = 30.0,
    ) -> None:
        from openai import AsyncOpenAI

        if not api_key:
            raise LLMError("OPENAI_API_KEY is not set", kind="auth", provider="openai")
        super().__init__(model=model)
        self.client = AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout,
            http_client=_pooled_http("openai", base_url),
        )

    def request_args(self, temperature: float, max_tokens: int) -> dict:
        args = {**super().request_args(temperature, max_tokens), "stream_options": {"include_usage": True}}
        reasoning = openai_reasoning_args(self.model)
        if reasoning is not None:
            # reasoning models reject any temperature but the default, and think before the first
            # token: ask for the least thinking a voice turn can afford
            del args["temperature"]
            args.update(reasoning)
        return args
