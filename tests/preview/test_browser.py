"""The Play button on /ai-options/ in real Chromium: the browser loads the preview and reports a
playable duration (no keys here, so the offline voice speaks)."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.asgi_server import asgi_server  # noqa: F401
from tests.browser import chrome, login  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_play_button_loads_playable_audio(chrome, asgi_server):  # noqa: F811
    login(chrome, asgi_server.url, asgi_server.username, asgi_server.password)
    chrome.get(f"{asgi_server.url}/ai-options/")
    buttons = chrome.find_elements(By.CSS_SELECTOR, "button[data-preview-voice]")
    assert len(buttons) == 18
    button = chrome.find_element(By.CSS_SELECTOR, 'button[data-preview-voice="en-US-Chirp3-HD-Leda"]')
    chrome.execute_script("arguments[0].scrollIntoView()", button)
    button.click()
    duration = WebDriverWait(chrome, 20).until(lambda d: d.execute_script(
        "const a = arguments[0].nextElementSibling; return a && a.readyState >= 1 && a.duration > 0 ? a.duration : 0;",
        button))
    assert duration > 0.5
