"""Agents that can talk on a call. The registry maps ``--agent NAME`` to a factory
``factory(call, options) -> Agent``; the voice pipeline registers itself as "pipeline"."""

from __future__ import annotations

from collections.abc import Callable

AGENTS: dict[str, Callable] = {}


def register(name: str) -> Callable:
    def deco(factory: Callable) -> Callable:
        AGENTS[name] = factory
        return factory

    return deco


@register("echo")
def _echo(call, options: dict):
    from .echo import EchoAgent

    return EchoAgent(delay_ms=options.get("echo_delay_ms", 500))


@register("greeting")
def _greeting(call, options: dict):
    from .greeting import GreetingAgent

    text = call.context.get("greeting") or options.get("greeting") or "Hello, thanks for calling."
    return GreetingAgent(text, options["cache_dir"], idle_s=options.get("idle_s", 30.0))


@register("pipeline")
def _pipeline(call, options: dict):
    from telephony.pipeline.agent import VoicePipelineAgent

    return VoicePipelineAgent(call, options)
