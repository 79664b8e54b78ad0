"""The AI options page marks models the provider does not serve (its GET /models), via the real SDK."""

import pytest

from aioptions.availability import refresh_model_availability, unavailable_models
from aioptions.fakes.openai_server import FakeOpenAIServer
from aioptions.selectors import providers_dict

pytestmark = pytest.mark.django_db(transaction=True)


async def test_unserved_models_are_marked_unavailable(settings):
    async with FakeOpenAIServer(models=["openai/gpt-oss-20b"]) as srv:
        settings.GROQ_API_KEY, settings.GROQ_BASE_URL = "k", srv.groq_base_url
        settings.OPENAI_API_KEY = ""
        missing = await refresh_model_availability(force=True)
    assert missing["groq"] == {"openai/gpt-oss-120b", "qwen/qwen3-32b", "llama-3.3-70b-versatile"}
    assert "openai" not in missing  # no key: not checked
    from asgiref.sync import sync_to_async

    data = await sync_to_async(providers_dict)()
    groq = {m["id"]: m["available"] for m in next(p for p in data["llm"] if p["id"] == "groq")["models"]}
    assert groq["openai/gpt-oss-20b"] and not groq["openai/gpt-oss-120b"]


async def test_a_failed_check_marks_nothing(settings):
    settings.GROQ_API_KEY, settings.GROQ_BASE_URL = "k", "http://127.0.0.1:9"
    settings.OPENAI_API_KEY = ""
    assert await refresh_model_availability(force=True) == {}
    assert unavailable_models() == {}
