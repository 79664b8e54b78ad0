"""Two real Chromium tabs on /ai-options/: a save in one shows up in the other with no reload,
and in the database, the API and the admin."""

import json
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from tests.asgi_server import asgi_server  # noqa: F401
from tests.browser import chrome, login  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _wait_ws(driver) -> None:
    # htmx's ws extension sets this once the socket is open
    WebDriverWait(driver, 15).until(lambda d: d.execute_script(
        "const el = document.getElementById('live');"
        "return !!(el && el['htmx-internal-data'] && el['htmx-internal-data'].webSocket"
        " && el['htmx-internal-data'].webSocket.socket.readyState === 1);"))


def test_save_in_one_tab_updates_the_other(chrome, asgi_server):  # noqa: F811
    base = asgi_server.url
    login(chrome, base, asgi_server.username, asgi_server.password)
    chrome.get(f"{base}/ai-options/")
    tab_a = chrome.current_window_handle
    _wait_ws(chrome)
    chrome.switch_to.new_window("tab")
    tab_b = chrome.current_window_handle
    chrome.get(f"{base}/ai-options/")
    _wait_ws(chrome)
    before = chrome.find_element(By.ID, "current-voice").text
    assert before != "Leda"
    marker = chrome.execute_script("window.__noReload = 42; return window.__noReload;")

    chrome.switch_to.window(tab_a)
    Select(chrome.find_element(By.ID, "voice")).select_by_value("google:en-US-Chirp3-HD-Leda")
    chrome.find_element(By.ID, "save").click()
    WebDriverWait(chrome, 10).until(EC.text_to_be_present_in_element((By.ID, "flash"), "Saved"))

    chrome.switch_to.window(tab_b)
    WebDriverWait(chrome, 10).until(EC.text_to_be_present_in_element((By.ID, "current-voice"), "Leda"))
    assert chrome.execute_script("return window.__noReload;") == marker  # updated in place, no reload
    selected = Select(chrome.find_element(By.ID, "voice")).first_selected_option.get_attribute("value")
    assert selected == "google:en-US-Chirp3-HD-Leda"

    # the database
    db = asgi_server.shell("from aioptions.models import AIConfig; c=AIConfig.objects.get(pk=1); "
                           "print(c.tts_provider, c.tts_voice_id, c.updated_by.username)")
    assert db == "google en-US-Chirp3-HD-Leda admin"
    # the API (a token: anonymous loopback reads are off by default)
    token = asgi_server.manage("create_api_token", "admin").strip().split()[-1]
    req = urllib.request.Request(f"{base}/api/v1/ai-options/config", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.load(r)["tts"]["voice_id"] == "en-US-Chirp3-HD-Leda"
    # the admin (history included)
    chrome.get(f"{base}/admin/aioptions/aiconfig/1/change/")
    selected = Select(chrome.find_element(By.NAME, "voice")).first_selected_option.get_attribute("value")
    assert selected == "google:en-US-Chirp3-HD-Leda"
    chrome.get(f"{base}/admin/aioptions/aiconfigchange/")
    assert "en-US-Chirp3-HD-Leda" in chrome.page_source


def test_campaign_voice_saved_on_page_reaches_other_tab(chrome, asgi_server):  # noqa: F811
    base = asgi_server.url
    login(chrome, base, asgi_server.username, asgi_server.password)
    chrome.get(f"{base}/ai-options/")
    _wait_ws(chrome)
    chrome.switch_to.new_window("tab")
    chrome.get(f"{base}/ai-options/")
    _wait_ws(chrome)
    tab_b = chrome.current_window_handle
    chrome.switch_to.window(chrome.window_handles[0])
    row = chrome.find_element(By.CSS_SELECTOR, "#campaigns tbody tr")
    Select(row.find_element(By.NAME, "campaign_voice")).select_by_value("google:en-US-Chirp3-HD-Orus")
    row.find_element(By.CSS_SELECTOR, "button").click()
    WebDriverWait(chrome, 10).until(EC.text_to_be_present_in_element((By.ID, "flash"), "saved"))
    chrome.switch_to.window(tab_b)
    WebDriverWait(chrome, 10).until(lambda d: Select(d.find_element(
        By.CSS_SELECTOR, "#campaigns tbody tr select")).first_selected_option.get_attribute("value")
        == "google:en-US-Chirp3-HD-Orus")
