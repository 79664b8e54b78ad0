import pytest

from aioptions.fakes.cartesia_server import FakeCartesiaServer
from aioptions.fakes.flux_server import FakeFluxServer
from aioptions.fakes.openai_server import FakeOpenAIServer
from campaigns.models import Campaign
from telephony.models import Call

CARTESIA_KATIE = "f786b574-daa5-4673-aa0c-cbe3e8534c02"


@pytest.fixture
def campaign(transactional_db):
    return Campaign.objects.create(name="Acme", extension="100", is_default=True, greeting="Hi, this is Acme.",
                                   system_prompt="Campaign: Acme\nYou are a receptionist.")


@pytest.fixture
def call_row(campaign):
    return Call.objects.create(sip_call_id="x", campaign=campaign, dialed="100", codec="PCMU")


@pytest.fixture
def cloud(settings):
    """Start fake Flux/LLM/Cartesia servers and point the settings at them (fixed latencies)."""

    class Cloud:
        async def start(self, *, flux: dict, llm: dict | None = None, tts: dict | None = None):
            self.flux = await FakeFluxServer(**flux).start()
            self.llm = await FakeOpenAIServer(**(llm or {})).start()
            self.tts = await FakeCartesiaServer(**{"ttfb_ms": 90, "speedup": 0, **(tts or {})}).start()
            settings.DEEPGRAM_API_KEY, settings.DEEPGRAM_URL = "dg", self.flux.url
            settings.GROQ_API_KEY, settings.GROQ_BASE_URL = "gq", self.llm.groq_base_url
            settings.OPENAI_API_KEY = ""
            settings.CARTESIA_API_KEY = "ca"
            settings.CARTESIA_BASE_URL, settings.CARTESIA_WS_URL = self.tts.http_url, self.tts.ws_url
            settings.GOOGLE_APPLICATION_CREDENTIALS = settings.GOOGLE_TTS_INSECURE_ENDPOINT = ""
            return self

        async def stop(self):
            for s in (self.flux, self.llm, self.tts):
                await s.stop()

    return Cloud()
