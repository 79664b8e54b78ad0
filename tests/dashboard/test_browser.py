"""The dashboard in real headless Chromium with seeded data; screenshots go to var/screenshots/."""

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.asgi_server import asgi_server  # noqa: F401
from tests.browser import chrome, login  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SEED = """
from django.utils import timezone
from campaigns.models import Campaign
from telephony.models import Call, Turn
camp = Campaign.objects.get(extension="100")
now = timezone.now()
call = Call.objects.create(sip_call_id="seed", campaign=camp, caller_uri="sip:al@x", answered_at=now,
                           ended_at=now + timezone.timedelta(seconds=42), end_reason="bye", turns_count=4,
                           mouth_to_ear_p50_ms=700, mouth_to_ear_p95_ms=900)
for i, total in enumerate((640.0, 700.0, 760.0, 900.0)):
    Turn.objects.create(call=call, index=i, user_text=f"question {i}", agent_text=f"answer {i}",
                        llm_model="openai/gpt-oss-20b", voice_id="v1", eot_received_ms=250, llm_request_ms=252,
                        llm_first_token_ms=555, tts_request_ms=556, tts_first_audio_ms=total - 12,
                        first_rtp_ms=total, mouth_to_ear_ms=total, llm_ttft_ms=303, tts_ttfb_ms=total - 568)
print(call.pk)
"""


def test_dashboard_renders_charts(chrome, asgi_server):  # noqa: F811
    call_id = asgi_server.shell(SEED).splitlines()[-1]
    login(chrome, asgi_server.url, asgi_server.username, asgi_server.password)
    shots = Path(__file__).resolve().parents[2] / "var" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    chrome.get(f"{asgi_server.url}/calls/")
    assert len(chrome.find_elements(By.CSS_SELECTOR, "svg.bars rect.bar")) == 10  # p50 + p95 for 5 stages
    assert len(chrome.find_elements(By.CSS_SELECTOR, "#call-list tbody tr")) == 1
    chrome.save_screenshot(str(shots / "calls.png"))
    chrome.get(f"{asgi_server.url}/calls/{call_id}/")
    rows = chrome.find_elements(By.CSS_SELECTOR, "svg.waterfall rect.seg")
    assert len(rows) == 4 * 6
    chrome.save_screenshot(str(shots / "call_detail.png"))
