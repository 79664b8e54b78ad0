"""Groq (official ``groq`` SDK) and OpenAI (official ``openai`` SDK) streaming chat clients.

Both SDKs are Stainless-generated with the same shapes and exception classes, so one base class
drives either; the subclasses only build the client. Errors become ``LLMError`` with a ``kind`` the
pipeline can act on (fallback model, apology) without parsing messages.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from .base import LLM, LLMError, LLMResult, LLMStream, LLMUsage


def _map_error(exc: Exception, provider: str) -> LLMError:
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    code = (body.get("code") if isinstance(body, dict) else None) or (
        (body.get("error") or {}).get("code") if isinstance(body, dict) and isinstance(body.get("error"), dict)
        else None)
    if name == "APITimeoutError":
        kind = "timeout"
    elif name == "APIConnectionError":
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
    def __init__(self, llm: OpenAICompatibleLLM, messages: list[dict], temperature: float, max_tokens: int) -> None:
        self.llm = llm
        self.messages = messages
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.result = LLMResult(requested_at=time.monotonic())
        self._response = None
        self._cancelled = False

    async def __aiter__(self) -> AsyncIterator[str]:
        llm = self.llm
        self.result.requested_at = time.monotonic()
        try:
            self._response = await llm.client.chat.completions.create(
                model=llm.model, messages=self.messages, stream=True, temperature=self.temperature,
                **llm.extra_args(self.max_tokens))
            async for chunk in self._response:
                if self._cancelled:
                    break
                self._usage(chunk)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason:
                    self.result.finish_reason = choice.finish_reason
                text = getattr(choice.delta, "content", None)
                if text:
                    if self.result.first_token_at is None:
                        self.result.first_token_at = time.monotonic()
                    self.result.text += text
                    yield text
        except Exception as exc:  # noqa: BLE001 - every SDK error becomes a typed LLMError
            if self._cancelled:
                return
            if isinstance(exc, LLMError):
                raise
            raise _map_error(exc, llm.name) from exc
        finally:
            self.result.finished_at = time.monotonic()
            await self._close_response()

    def _usage(self, chunk) -> None:
        usage = getattr(chunk, "usage", None)
        x_groq = getattr(chunk, "x_groq", None) or (getattr(chunk, "model_extra", None) or {}).get("x_groq")
        if usage is None and x_groq is not None:  # Groq puts usage in x_groq on the last chunk
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
        await self._close_response()


class OpenAICompatibleLLM(LLM):
    name = "openai"
    client = None

    def __init__(self, *, model: str) -> None:
        self.model = model

    def extra_args(self, max_tokens: int) -> dict:
        return {"max_completion_tokens": max_tokens}

    def stream(self, messages: list[dict], *, temperature: float = 0.6, max_tokens: int = 300) -> LLMStream:
        return _Stream(self, messages, temperature, max_tokens)

    async def list_models(self) -> list[str]:
        try:
            page = await self.client.models.list()
            return [m.id for m in page.data]
        except Exception as exc:  # noqa: BLE001
            raise _map_error(exc, self.name) from exc

    async def aclose(self) -> None:
        try:
            await self.client.close()
        except Exception:  # noqa: BLE001
            pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={str(self.client.base_url)!r})"


class GroqLLM(OpenAICompatibleLLM):
    name = "groq"

    def __init__(self, *, api_key: str, model: str, base_url: str = "https://api.groq.com", max_retries: int = 0,
                 timeout: float = 30.0) -> None:
        from groq import AsyncGroq

        if not api_key:
            raise LLMError("GROQ_API_KEY is not set", kind="auth", provider="groq")
        super().__init__(model=model)
        self.client = AsyncGroq(api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout)

    def extra_args(self, max_tokens: int) -> dict:
        args: dict = {"max_completion_tokens": max_tokens}
        if self.model.startswith("openai/gpt-oss"):
            args.update(reasoning_effort="low", include_reasoning=False)  # voice: low latency, no <think>
        return args


class OpenAILLM(OpenAICompatibleLLM):
    name = "openai"

    def __init__(self, *, api_key: str, model: str, base_url: str = "https://api.openai.com/v1", max_retries: int = 0,
                 timeout: float = 30.0) -> None:
        from openai import AsyncOpenAI

        if not api_key:
            raise LLMError("OPENAI_API_KEY is not set", kind="auth", provider="openai")
        super().__init__(model=model)
        self.client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout)

    def extra_args(self, max_tokens: int) -> dict:
        return {"max_completion_tokens": max_tokens, "stream_options": {"include_usage": True}}
