"""The one catalog of what AI exists: TTS voices, LLM models, STT engines, and their providers.

Pure data, no Django import, so the admin, the page, the API, the pipeline and the benchmarks all
read the same list. Provider *keys* are not here (see ``aioptions.keys``); this module only says
what could be chosen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CARTESIA_MODEL = "sonic-3"
GOOGLE_TTS_MODEL = "chirp3-hd"
OFFLINE_TTS_MODEL = "espeak-ng"
OFFLINE_STT_MODEL = "whisper-tiny.en"
FLUX_MODEL = "flux-general-en"


@dataclass(frozen=True)
class Voice:
    id: str
    provider: str
    name: str
    gender: str
    description: str
    use_case: str
    model: str
    language: str = "en-US"

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.gender}) - {self.description}"


@dataclass(frozen=True)
class LLMModel:
    id: str
    provider: str
    label: str
    retired: bool = False
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Provider:
    id: str
    kind: str  # "llm" | "tts" | "stt"
    label: str
    offline: bool = False
    key_setting: str = ""  # the settings name whose presence means "configured"
    models: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        return asdict(self)


# --- TTS voices -----------------------------------------------------------------------------
# Ten Cartesia library voices (public voice ids) served with sonic-3, and the eight Chirp 3 HD
# voices (ids are Google's voice names).
_CARTESIA = [
    ("228fca29-3a0a-435c-8728-5cb483251068", "Kiefer", "male",
     "Confident, clear and composed", "Customer service and appointment confirmations"),
    ("5ee9feff-1265-424a-9d7f-8e4d431a12c7", "Ronald", "male",
     "Articulate, measured and intelligent", "Explaining details: billing, policies, instructions"),
    ("c961b81c-a935-4c17-bfb3-ba2239de8c2f", "Kyle", "male",
     "Friendly and conversational", "Casual outreach and follow-up calls"),
    ("5cad89c9-d88a-4832-89fb-55f2f16d13d3", "Brandon", "male",
     "Polished and professional", "B2B sales and lead qualification"),
    ("98a34ef2-2140-4c28-9c71-663dc4dd7022", "Clyde", "male",
     "Warm, steady narrator", "Reminders and longer spoken messages"),
    ("6ccbfb76-1fc6-48f7-b71d-91ac6298247b", "Tessa", "female",
     "Warm and friendly, like a chat with a friend", "Reception and welcome calls"),
    ("9626c31c-bec5-4cca-baa8-f8ba9e84c8bc", "Jacqueline", "female",
     "Confident, reassuring support agent", "Support lines and issue resolution"),
    ("a33f7a4c-100f-41cf-a1fd-5822e8fc253f", "Lauren", "female",
     "Engaging and expressive", "Surveys and feedback calls"),
    ("f786b574-daa5-4673-aa0c-cbe3e8534c02", "Katie", "female",
     "Calm, clear and friendly", "Healthcare and dental appointment scheduling"),
    ("91b4cf29-5166-44eb-8054-30d40ecc8081", "Tina", "female",
     "Bright and upbeat", "Promotions and event invitations"),
]
_GOOGLE = [
    ("Orus", "male", "Firm, lower-middle pitch", "Authoritative notices and collections"),
    ("Charon", "male", "Informative, deep and calm", "Explaining policies and account details"),
    ("Fenrir", "male", "Excitable and energetic", "Sales and promotional outreach"),
    ("Puck", "male", "Upbeat and lively", "Friendly reminders and casual follow-ups"),
    ("Kore", "female", "Firm and professional", "Business calls and confirmations"),
    ("Aoede", "female", "Breezy and easy-going", "Hospitality, bookings and welcome calls"),
    ("Leda", "female", "Youthful and bright", "Consumer surveys and younger audiences"),
    ("Zephyr", "female", "Bright, higher pitch", "Announcements and upbeat campaigns"),
]

OFFLINE_VOICE_ID = "offline-espeak-en-us"

VOICES: tuple[Voice, ...] = tuple(
    [Voice(vid, "cartesia", name, g, d, u, CARTESIA_MODEL) for vid, name, g, d, u in _CARTESIA]
    + [
        Voice(f"en-US-Chirp3-HD-{name}", "google", name, g, d, u, GOOGLE_TTS_MODEL)
        for name, g, d, u in _GOOGLE
    ]
)
# The offline voice is a provider's voice like any other, but it is not one of the 18 catalogue
# voices an operator browses: it is what serves when a cloud provider has no key.
OFFLINE_VOICES: tuple[Voice, ...] = (
    Voice(OFFLINE_VOICE_ID, "offline", "Offline voice", "male",
          "Robotic but always available (espeak-ng, runs locally)",
          "Running with no API keys and no network", OFFLINE_TTS_MODEL),
)

# --- LLM models --------------------------------------------------------------------------------
LLM_MODELS: tuple[LLMModel, ...] = (
    LLMModel("openai/gpt-oss-20b", "groq", "GPT-OSS 20B on Groq (fastest)"),
    LLMModel("openai/gpt-oss-120b", "groq", "GPT-OSS 120B on Groq"),
    LLMModel("qwen/qwen3-32b", "groq", "Qwen3 32B on Groq"),
    LLMModel("llama-3.3-70b-versatile", "groq", "Llama 3.3 70B (retired)", retired=True,
             note="Decommissioned by Groq on 2026-08-16; use openai/gpt-oss-120b"),
    LLMModel("gpt-4o-mini", "openai", "GPT-4o mini"),
    LLMModel("gpt-4.1-mini", "openai", "GPT-4.1 mini"),
    LLMModel("gpt-5-mini", "openai", "GPT-5 mini"),
    LLMModel("offline-script", "offline", "Offline script (not an LLM: answers from the campaign text)"),
)

PROVIDERS: tuple[Provider, ...] = (
    Provider("groq", "llm", "Groq", key_setting="GROQ_API_KEY"),
    Provider("openai", "llm", "OpenAI", key_setting="OPENAI_API_KEY"),
    Provider("offline", "llm", "Offline script", offline=True),
    Provider("cartesia", "tts", "Cartesia", key_setting="CARTESIA_API_KEY", models=(CARTESIA_MODEL,)),
    Provider("google", "tts", "Google Chirp 3 HD", key_setting="GOOGLE_APPLICATION_CREDENTIALS",
             models=(GOOGLE_TTS_MODEL,)),
    Provider("offline", "tts", "Offline voice (Piper, espeak-ng as last resort)", offline=True,
             models=(OFFLINE_TTS_MODEL,)),
    Provider("deepgram", "stt", "Deepgram Flux", key_setting="DEEPGRAM_API_KEY", models=(FLUX_MODEL,)),
    Provider("offline", "stt", "Offline recogniser (Whisper tiny.en + Silero VAD)", offline=True,
             models=(OFFLINE_STT_MODEL,)),
)

DEFAULT_LLM = ("groq", "openai/gpt-oss-20b")
DEFAULT_VOICE = ("cartesia", "f786b574-daa5-4673-aa0c-cbe3e8534c02")

_VOICES_BY_ID = {v.id: v for v in VOICES + OFFLINE_VOICES}
_MODELS = {(m.provider, m.id): m for m in LLM_MODELS}


class CatalogError(ValueError):
    """A provider, model or voice that the catalog does not know (message is user-facing)."""


def voices(include_offline: bool = False) -> tuple[Voice, ...]:
    return VOICES + OFFLINE_VOICES if include_offline else VOICES


def get_voice(voice_id: str) -> Voice | None:
    return _VOICES_BY_ID.get(voice_id)


def providers(kind: str) -> tuple[Provider, ...]:
    return tuple(p for p in PROVIDERS if p.kind == kind)


def get_provider(kind: str, provider_id: str) -> Provider | None:
    return next((p for p in PROVIDERS if p.kind == kind and p.id == provider_id), None)


def llm_models(provider_id: str | None = None) -> tuple[LLMModel, ...]:
    return tuple(m for m in LLM_MODELS if provider_id is None or m.provider == provider_id)


def get_llm_model(provider_id: str, model_id: str) -> LLMModel | None:
    return _MODELS.get((provider_id, model_id))


def validate_voice(provider_id: str, voice_id: str) -> Voice:
    """Return the voice, or raise CatalogError naming exactly what is wrong."""
    if not isinstance(provider_id, str) or get_provider("tts", provider_id) is None:
        known = ", ".join(sorted({p.id for p in providers("tts")}))
        raise CatalogError(f"unknown TTS provider {provider_id!r} (known: {known})")
    voice = get_voice(voice_id) if isinstance(voice_id, str) else None
    if voice is None:
        raise CatalogError(f"unknown voice {voice_id!r}")
    if voice.provider != provider_id:
        raise CatalogError(
            f"voice {voice_id!r} belongs to provider {voice.provider!r}, not {provider_id!r}"
        )
    return voice


def validate_llm(provider_id: str, model_id: str, *, allow_retired: bool = False) -> LLMModel:
    if not isinstance(provider_id, str) or get_provider("llm", provider_id) is None:
        known = ", ".join(sorted({p.id for p in providers("llm")}))
        raise CatalogError(f"unknown LLM provider {provider_id!r} (known: {known})")
    model = get_llm_model(provider_id, model_id) if isinstance(model_id, str) else None
    if model is None:
        known = ", ".join(m.id for m in llm_models(provider_id))
        raise CatalogError(f"unknown model {model_id!r} for provider {provider_id!r} (known: {known})")
    if model.retired and not allow_retired:
        raise CatalogError(f"model {model_id!r} is retired: {model.note}")
    return model


def tts_voice_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """Grouped (optgroup) choices for forms: value is ``provider:voice_id``."""
    groups = []
    for prov in providers("tts"):
        vs = [v for v in voices(include_offline=True) if v.provider == prov.id]
        groups.append((prov.label, [(f"{v.provider}:{v.id}", v.label) for v in vs]))
    return groups
