"""Call set-up must not block the event loop (issue 18): every call's media shares the loop, so a
TLS context build, an SDK import or a sync file/DB access during one caller's set-up delays the
audio of every other caller. Real pipeline call set-ups (config from the DB, Flux connect, LLM
prewarm, Cartesia connect, greeting to first audio) against the fake providers, which run on their
own loop in another thread, with a blocking probe on the call's loop."""

import asyncio
import gc

import pytest
from asgiref.sync import sync_to_async

from aioptions.fakes.cartesia_server import FakeCartesiaServer
from aioptions.fakes.flux_server import FakeFluxServer
from aioptions.fakes.openai_server import FakeOpenAIServer
from aioptions.fakes.threaded import in_thread
from aioptions.providers import netpool
from telephony.media.memcall import FakeCall
from telephony.metrics.gcpause import GcPauses, freeze_startup_heap
from telephony.metrics.runtime import warm_providers
from telephony.models import Call
from telephony.pipeline.agent import VoicePipelineAgent

from .lagprobe import BlockingProbe

pytestmark = pytest.mark.django_db(transaction=True)
MAX_BLOCK_MS = 5.0


class WatchedCall(FakeCall):
    """A FakeCall that signals when the agent's first audio (the greeting) is handed to the wire."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.first_audio = asyncio.Event()

    def play(self, payload: bytes, on_sent=None) -> None:
        self.first_audio.set()
        super().play(payload, on_sent)


async def set_up_call(campaign, probe: BlockingProbe | None) -> tuple[float, float]:
    """One call from its DB row to the greeting's first audio; the probe runs only over set-up."""
    if probe is not None:
        probe.start()
    row = await sync_to_async(Call.objects.create)(sip_call_id="perf", campaign=campaign, dialed="100",
                                                   codec="PCMU")
    call = WatchedCall(record_id=row.pk, campaign_id=campaign.pk, max_seconds=20)
    task = asyncio.create_task(VoicePipelineAgent(call).run(call))
    await asyncio.wait_for(call.first_audio.wait(), 15)
    result = (0.0, 0.0)
    if probe is not None:
        probe.stop()
        result = (probe.worst_ms, probe.worst_lag_ms)
    call._end("bye")
    await asyncio.wait_for(task, 10)
    return result


async def test_call_setup_blocks_the_loop_at_most_5_ms(campaign, settings):
    before = netpool.contexts_built
    with (in_thread(FakeFluxServer(utterances=[])) as flux, in_thread(FakeOpenAIServer()) as llm,
          in_thread(FakeCartesiaServer(ttfb_ms=90, speedup=0)) as tts):
        settings.DEEPGRAM_API_KEY, settings.DEEPGRAM_URL = "dg", flux.url
        settings.GROQ_API_KEY, settings.GROQ_BASE_URL = "gq", llm.groq_base_url
        settings.OPENAI_API_KEY = ""
        settings.CARTESIA_API_KEY = "ca"
        settings.CARTESIA_BASE_URL, settings.CARTESIA_WS_URL = tts.http_url, tts.ws_url
        settings.GOOGLE_APPLICATION_CREDENTIALS = settings.GOOGLE_TTS_INSECURE_ENDPOINT = ""
        await warm_providers()  # what BridgeRunner.start does once per process
        # and what run_sip_bridge does once ready: the start-up heap leaves the collector's walks
        # (without it a full collection of this test process's heap ran on the loop mid set-up)
        threshold = gc.get_threshold()
        freeze_startup_heap()
        pauses = GcPauses()
        pauses.start()
        try:
            results = []
            for _ in range(4):
                results.append(await set_up_call(campaign, BlockingProbe()))
        finally:
            pauses.stop()
            gc.unfreeze()
            gc.set_threshold(*threshold)
        await netpool.aclose_pools()
    print("blocked / lag per set-up (ms):", [(round(b, 2), round(lag, 2)) for b, lag in results], pauses.stats())
    worst = max(b for b, _ in results)
    assert worst <= MAX_BLOCK_MS, (results, pauses.stats())
    # plain http/ws endpoints never build a verified TLS context
    assert netpool.contexts_built == before


async def test_tls_context_is_built_once_and_only_for_secure_endpoints():
    built = netpool.contexts_built
    assert netpool.ssl_for("ws://127.0.0.1:9/v2/listen") is None
    client = netpool.http_client("test", "http://127.0.0.1:9")
    assert netpool.contexts_built == built  # an http pool trusts nothing and builds no CA store
    assert netpool.http_client("test", "http://127.0.0.1:9/other/path") is client  # one pool per origin
    assert netpool.is_pooled(client)
    ctx = netpool.ssl_for("wss://api.deepgram.com/v2/listen")
    assert ctx is netpool.ssl_for("https://api.groq.com") is netpool.ssl_context()
    assert netpool.contexts_built <= built + 1
    secure = netpool.http_client("test", "https://api.groq.com")
    assert secure is not client and netpool.is_pooled(secure)
    await netpool.aclose_pools()
    assert not netpool.is_pooled(client) and client.is_closed
