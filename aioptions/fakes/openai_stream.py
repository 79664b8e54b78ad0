"""How the fake OpenAI/Groq chat server shapes a reply: where the reasoning goes (and which reasoning
fields Groq refuses), the tool-call fragments, the usage counts and the SSE chunks of a streamed answer.

Why a file of its own: openai_server.py holds the scripting options, the HTTP/1.1 plumbing and the error
replies; this file holds the wire format of a completion, as OpenAI and Groq document it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .openai_server import Fail, FakeOpenAIServer, ToolCalls


def reasoning_problem(path: str, data: dict) -> str:
    """Groq's documented 400s for reasoning fields ('' when the request is acceptable)."""
    if not path.startswith("/openai/"):
        return ""
    model = str(data.get("model", ""))
    fmt, effort = data.get("reasoning_format"), data.get("reasoning_effort")
    if fmt is not None and "include_reasoning" in data:
        return "reasoning_format and include_reasoning are mutually exclusive"
    if fmt is not None and fmt not in ("hidden", "raw", "parsed"):
        return f"reasoning_format must be hidden, raw or parsed, not {fmt!r}"
    if effort is not None:
        allowed = ("low", "medium", "high") if model.startswith("openai/gpt-oss") else (
            ("none", "default") if model.startswith("qwen/qwen3") else ())
        if effort not in allowed:
            return f"reasoning_effort {effort!r} is not supported with model {model}"
    return ""


def reasoning_route(path: str, data: dict, reasoning: str | None, think_in_content: bool) -> str:
    """Where this request's reasoning goes: 'content', 'delta' or 'none'."""
    if not reasoning:
        return "none"
    if think_in_content:
        return "content"
    if not path.startswith("/openai/"):
        return "none" if data.get("include_reasoning") is False else "delta"
    model = str(data.get("model", ""))
    if model.startswith("qwen/qwen3"):
        if data.get("reasoning_effort") == "none":
            return "none"
        fmt = data.get("reasoning_format") or "raw"  # Groq's default for Qwen3
        return {"raw": "content", "parsed": "delta"}.get(fmt, "none")
    if data.get("include_reasoning") is False or data.get("reasoning_format") == "hidden":
        return "none"
    return "delta"


def tool_fragments(calls: ToolCalls, n: int) -> list[dict]:
    """The ``delta.tool_calls[]`` items in wire order: per call a header (index, id, type,
    name, empty arguments) then its argument fragments; interleaved across calls on request."""
    per_call = []
    for i, (name, _) in enumerate(calls.calls):
        args = calls.arguments(i)
        frags = [{"index": i, "id": f"call_{n}_{i}", "type": "function",
                  "function": {"name": name, "arguments": ""}}]
        frags += [{"index": i, "function": {"arguments": args[k:k + calls.arg_piece]}}
                  for k in range(0, len(args), calls.arg_piece)]
        per_call.append(frags)
    if not calls.interleave:
        return [f for frags in per_call for f in frags]
    out = []
    for k in range(max(len(f) for f in per_call)):
        out += [frags[k] for frags in per_call if k < len(frags)]
    return out


def usage(data: dict, text: str) -> dict:
    prompt = sum(len(str(m.get("content", "")).split()) for m in data.get("messages", []))
    completion = len(text.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def stream_chat(srv: FakeOpenAIServer, writer: asyncio.StreamWriter, path: str, data: dict, text: str,
                      fail: Fail, n: int, calls: ToolCalls | None) -> None:
    """Write the SSE body of one streamed completion (the response head is already sent), pacing it
    with ``srv.ttft`` and ``srv.token_s``. A client that goes away raises out of here to the caller."""
    cid, model = f"chatcmpl-{n}", data["model"]
    groq = path.startswith("/openai/")

    def raw(payload: bytes) -> None:  # one HTTP chunk (an empty payload ends the body)
        writer.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")

    def event(obj: dict) -> None:
        raw(f"data: {json.dumps(obj)}\n\n".encode())

    def chunk(delta: dict, finish: str | None = None, **extra) -> dict:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }

    if fail == "hang":
        await asyncio.sleep(3600)
    event(
        chunk(
            {"role": "assistant", "content": ""}, **({"x_groq": {"id": "req_fake"}} if groq else {})
        )
    )
    await writer.drain()
    route = reasoning_route(path, data, srv.reasoning, srv.think_in_content)
    if route == "delta":
        for word in srv.reasoning.split():  # reasoning in its own delta field
            event(chunk({"reasoning": word + " "}))
    elif route == "content":  # raw: <think> inside the answer text, cut mid-tag
        think = f"<think>{srv.reasoning}</think>\n\n"
        for i in range(0, len(think), 3):
            event(chunk({"content": think[i : i + 3]}))
    await asyncio.sleep(srv.ttft)
    tokens = [w + " " for w in text.split(" ")] if text or calls is None else []
    if tokens:
        tokens[-1] = tokens[-1].rstrip(" ")
    for i, tok in enumerate(tokens):
        if i:
            await asyncio.sleep(srv.token_s)
        event(chunk({"content": tok}))
        await writer.drain()
        if fail == "stream_error":
            event(
                {
                    "error": {
                        "message": "The model is overloaded mid-stream",
                        "type": "internal_server_error",
                    }
                }
            )
            raw(b"")
            await writer.drain()
            return
    if calls is not None:
        for frag in tool_fragments(calls, n):
            event(chunk({"tool_calls": [frag]}))
            await writer.drain()
            await asyncio.sleep(srv.token_s)
    counts = usage(data, text)
    include = (data.get("stream_options") or {}).get("include_usage")
    finish = "tool_calls" if calls is not None else "stop"
    event(chunk({}, finish, **({"x_groq": {"id": "req_fake", "usage": counts}} if groq else {})))
    if include:
        event(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": counts,
            }
        )
    raw(b"data: [DONE]\n\n")
    raw(b"")
    await writer.drain()
