"""What a bridge process does once at start so no call pays for it on the event loop (issue 18).

- Provider warm-up: the SDK modules are imported and the one shared TLS context is built in a worker
  thread (only when a keyed provider has an https/wss endpoint; plain http/ws fakes never build one),
  so the first call does not stall every other call's media for an import or a CA-bundle parse.
- The loop-lag monitor (max and p99 per minute), shown in the bridge status and in /metrics.
- Prometheus: the gateway and the lag monitor are watched by ``telephony.metrics.prom`` (read at
  scrape time), and call start/end are counted here (the runner's hooks call them).
- Garbage-collector pauses timed (gcpause.py), and the heap alive after start-up frozen out of
  future collections once the bridge is ready, so a full collection no longer stops every call's
  media for hundreds of milliseconds.
- Shutdown closes the shared provider pools of the loop.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys

from django.conf import settings

from aioptions.providers import netpool

from . import prom
from .gcpause import GcPauses, freeze_startup_heap
from .looplag import LoopLagMonitor

log = logging.getLogger("telephony.bridge")


def provider_endpoints() -> tuple[list[str], list[str]]:
    """(endpoints, modules to import) of the cloud providers that have keys in this process."""
    urls: list[str] = []
    modules: list[str] = []
    if settings.DEEPGRAM_API_KEY:
        urls.append(settings.DEEPGRAM_URL)
        modules += ["websockets.asyncio.client", "aioptions.providers.flux"]
    if settings.GROQ_API_KEY:
        urls.append(settings.GROQ_BASE_URL)
        modules += ["groq", "aioptions.providers.llm"]
    if settings.OPENAI_API_KEY:
        urls.append(settings.OPENAI_BASE_URL)
        modules += ["openai", "aioptions.providers.llm"]
    if settings.CARTESIA_API_KEY:
        urls += [settings.CARTESIA_BASE_URL, settings.CARTESIA_WS_URL]
        modules += ["cartesia", "aioptions.providers.cartesia_tts"]
    if settings.GOOGLE_APPLICATION_CREDENTIALS or settings.GOOGLE_TTS_INSECURE_ENDPOINT:
        modules.append("aioptions.providers.google_tts")
    return urls, list(dict.fromkeys(modules))


# imported lazily by the SDKs on first use (first request, first attribute access): ~40 ms on the loop
_LAZY = ("httpcore", "h11", "anyio._backends._asyncio", "groq.resources", "groq.resources.chat",
         "openai.resources", "openai.resources.chat", "cartesia.resources", "cartesia.lib._tts")


def _import_all(modules: list[str]) -> None:
    for name in modules + [m for m in _LAZY if m.split(".")[0] in {x.split(".")[0] for x in modules}
                           or m.split(".")[0] in ("httpcore", "h11", "anyio")]:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # a missing optional SDK shows up at the call, with its own error
            log.warning("provider module %s not importable: %s", name, exc)
    _rehearse_clients(modules)


def _rehearse_clients(modules: list[str]) -> None:
    """Build each SDK client once with a dummy key and no network (in the warm-up thread): their first
    construction detects the platform and builds resource objects, ~35 ms that a call would otherwise
    pay on the event loop. The throwaway HTTP client trusts nothing and is never used."""
    import httpx

    dummy = httpx.AsyncClient(verify=netpool.no_trust_context())
    try:
        if "groq" in modules:
            from groq import AsyncGroq

            c = AsyncGroq(api_key="warm-up", base_url="http://127.0.0.1:9", http_client=dummy)
            _ = (c.chat.completions, c.models, c.platform_headers())
        if "openai" in modules:
            from openai import AsyncOpenAI

            c = AsyncOpenAI(api_key="warm-up", base_url="http://127.0.0.1:9", http_client=dummy)
            _ = (c.chat.completions, c.models, c.platform_headers())
        if "cartesia" in modules:
            from cartesia import AsyncCartesia

            c = AsyncCartesia(api_key="warm-up", base_url="http://127.0.0.1:9", websocket_base_url="ws://127.0.0.1:9",
                              http_client=dummy)
            _ = (c.tts, c.tts.websocket_connect(), c.platform_headers())
            _rehearse_cartesia_events()
    except Exception as exc:  # noqa: BLE001 - only an optimisation
        log.debug("SDK warm-up: %s", exc)


def _rehearse_cartesia_events() -> None:
    """Parse one of each documented WebSocket event through the SDK: its first parse builds pydantic
    validators for the whole response union (~5-10 ms of CPU), which the first call's greeting would
    otherwise pay on the loop."""
    from cartesia._models import construct_type_unchecked
    from cartesia.types.websocket_response import WebsocketResponse

    for event in ({"type": "chunk", "data": "", "done": False, "status_code": 206, "context_id": "w", "step_time": 0},
                  {"type": "done", "done": True, "status_code": 200, "context_id": "w"},
                  {"type": "error", "done": True, "status_code": 500, "context_id": "w", "error": "warm-up"}):
        construct_type_unchecked(value=event, type_=WebsocketResponse)


def _warm_channel_layer() -> None:
    """Build the Channels layer once: channels_redis (with redis.asyncio, msgpack) is imported when the
    layer is first asked for, which on the loop blocked the first call's set-up for ~150 ms. The layer
    object opens no connection until it is used, so building it in a thread is safe."""
    from channels.layers import get_channel_layer

    try:
        get_channel_layer()
    except Exception as exc:  # noqa: BLE001 - a misconfigured layer is reported where it is used
        log.warning("channel layer warm-up: %s", exc)


async def _rehearse_channel_layer() -> None:
    """One group join and leave on this loop: channels_redis opens its connection pool per event
    loop and serialises with msgpack on first use; on the loop during the first call that cost the
    set-up ~3-6 ms. A layer that is down is not an error here; live config reports it per call."""
    from channels.layers import get_channel_layer

    try:
        layer = get_channel_layer()
        if layer is None:
            return
        channel = await asyncio.wait_for(layer.new_channel(), 2)
        await asyncio.wait_for(layer.group_add("talky-warmup", channel), 2)
        await asyncio.wait_for(layer.group_discard("talky-warmup", channel), 2)
    except Exception as exc:  # noqa: BLE001
        log.warning("channel layer warm-up: %s", exc)


async def warm_providers() -> None:
    """Import the keyed providers' SDKs, build the channel layer and the shared TLS context, all off
    the loop."""
    urls, modules = provider_endpoints()
    await asyncio.to_thread(_import_all, modules)
    await asyncio.to_thread(_warm_channel_layer)
    await _rehearse_channel_layer()
    await netpool.warm_up(urls)


class ProcessRuntime:
    """Started once per bridge process (BridgeRunner.start), stopped at its end."""

    def __init__(self) -> None:
        self.lag = LoopLagMonitor()
        self.lag.on_sample.append(prom.observe_loop_lag)
        self.gc = GcPauses(observe=prom.observe_gc_pause)

    async def start(self, *, pipeline: bool, gateway=None) -> None:
        prom.COLLECTOR.watch(gateway=gateway, lag=self.lag)
        self.lag.start()
        self.gc.start()
        if pipeline:
            await warm_providers()

    def ready(self) -> None:
        """Start-up is over (imports, warm-ups, models loaded): freeze what is alive now. Only for a
        process that is the bridge's own (run_sip_bridge): a bridge started inside the web process
        or a test run would freeze their heaps too, and frozen cyclic garbage is never reclaimed."""
        frozen = freeze_startup_heap()
        log.info("gc: %d start-up objects frozen out of future collections", frozen)

    async def stop(self) -> None:
        self.lag.stop()
        self.gc.stop()
        await netpool.aclose_pools()
        if "aioptions.providers.google_tts" in sys.modules:
            from aioptions.providers.google_tts import aclose_shared_clients

            await aclose_shared_clients()

    def stats(self) -> dict:
        return self.lag.stats()

    @staticmethod
    def call_started() -> None:
        prom.COLLECTOR.call_started()

    @staticmethod
    def call_ended(call) -> None:
        """Count the end (by reason) and fold the call's final frame counters into the totals."""
        prom.COLLECTOR.call_ended(getattr(call, "session", None), getattr(call, "end_reason", None))
