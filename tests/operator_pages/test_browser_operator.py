"""Operator pages in real headless Chromium: a browser call with a fake microphone fed from a speech
WAV through the offline engines (no keys), the call page of a finished call, and turn settings saved
in one tab appearing in another. Every wait is on a DOM or database condition, with a bound."""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.asgi_server import asgi_server  # noqa: F401
from tests.browser import CHROMEDRIVER, CHROMIUM, _available, chrome, login  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SPEECH = "Yes, I would like to book an appointment for Tuesday."


def _speech_wav(path: Path, lead_s: float) -> Path:
    """espeak-ng speech with ``lead_s`` of silence before it and 8 s after (the fake microphone
    plays it once, then silence)."""
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        pytest.skip("espeak-ng and sox are needed to make the test speech")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-w", str(raw), "--stdin"], input=SPEECH.encode(), check=True, timeout=30)
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(path), "pad", str(lead_s), "8"],
                   check=True, timeout=30)
    return path


def _mic_driver(wav: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    reason = _available()
    if reason:
        pytest.skip(reason)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--autoplay-policy=no-user-gesture-required",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={wav}%noloop", "--window-size=1280,900",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='chrome-')}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def _data(driver, name: str) -> str:
    return driver.execute_script(f"return document.getElementById('talk-panel').dataset.{name} || '';")


def _turns(server, call_id: str) -> list[str]:
    out = server.shell(f"from telephony.models import Turn\nfor t in Turn.objects.filter(call_id={int(call_id)}):\n"
                       "    print(repr((t.user_text, t.agent_text)))")
    return [line for line in out.splitlines() if line.startswith("(")]


def _wait_db(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("condition not met in the database")


def test_browser_call_greets_and_replies(asgi_server, tmp_path):  # noqa: F811
    """The greeting plays (audio reaches the page), the caller's sentence from the fake microphone
    becomes a Turn row with a reply, whose audio and latency also reach the page."""
    driver = _mic_driver(_speech_wav(tmp_path / "speech.wav", lead_s=10.0))
    try:
        login(driver, asgi_server.url, asgi_server.username, asgi_server.password)
        driver.get(f"{asgi_server.url}/ai-options/")
        driver.find_element(By.ID, "talk-start").click()
        WebDriverWait(driver, 30).until(lambda d: _data(d, "call"))
        call_id = _data(driver, "call")
        assert "Acme Dental" in driver.find_element(By.ID, "talk-transcript").text  # greeting line
        WebDriverWait(driver, 30).until(lambda d: int(_data(d, "audioBytes") or 0) >= 160 * 50)  # 1 s of greeting
        # the caller's turn and the agent's reply: on the page, then in the database
        WebDriverWait(driver, 90).until(lambda d: int(_data(d, "turns") or 0) >= 1)
        reply = driver.find_element(By.CSS_SELECTOR, "#talk-transcript .turn-reply")
        assert reply.get_attribute("data-latency") not in ("", "-")
        turns = _wait_db(lambda: _turns(asgi_server, call_id))
        assert "would like" in turns[0].lower(), turns  # Whisper tiny.en on espeak: the gist, not every word
        driver.find_element(By.ID, "talk-hangup").click()
        WebDriverWait(driver, 30).until(lambda d: _data(d, "state") == "ended")
        row = _wait_db(lambda: asgi_server.shell(
            f"from telephony.models import Call, Turn; c=Call.objects.get(pk={int(call_id)}); "
            "t=Turn.objects.filter(call=c).first(); "
            "print(c.end_reason, c.dialed, bool(c.recording), c.turns_count, c.packets_out, "
            "t.first_rtp_ms is not None, bool(t.agent_text)) if c.ended_at else print('')").strip())
        reason, dialed, has_rec, turns_count, frames_out, reply_sent, reply_heard = row.split()
        assert (dialed, has_rec, reply_sent, reply_heard) == ("browser", "True", "True", "True"), row
        assert int(turns_count) >= 1 and reason in ("bye", "agent")
        # every frame the server sent (greeting and reply) reached the page
        assert int(_data(driver, "audioBytes")) == int(frames_out) * 160
        # the finished call's page shows its waveform and transcript
        driver.get(f"{asgi_server.url}/calls/{call_id}/")
        assert driver.find_elements(By.CSS_SELECTOR, "#wave path.lane")
        assert driver.find_elements(By.CSS_SELECTOR, "#transcript .line.caller")
    finally:
        driver.quit()


def test_barge_in_stops_the_greeting(asgi_server, tmp_path):  # noqa: F811
    """Speaking while the agent talks: the page is told to drop its buffered audio and the turn is
    answered."""
    driver = _mic_driver(_speech_wav(tmp_path / "early.wav", lead_s=1.5))
    try:
        login(driver, asgi_server.url, asgi_server.username, asgi_server.password)
        driver.get(f"{asgi_server.url}/ai-options/")
        driver.find_element(By.ID, "talk-start").click()
        WebDriverWait(driver, 30).until(lambda d: _data(d, "call"))
        WebDriverWait(driver, 60).until(lambda d: int(_data(d, "clears") or 0) >= 1)
        WebDriverWait(driver, 90).until(lambda d: int(_data(d, "turns") or 0) >= 1)
        driver.find_element(By.ID, "talk-hangup").click()
        WebDriverWait(driver, 30).until(lambda d: _data(d, "state") == "ended")
    finally:
        driver.quit()


SEED = """
from django.conf import settings
from campaigns.models import Campaign
from tests.operator_pages.seed import seed_call
print(seed_call(settings.MEDIA_ROOT, Campaign.objects.get(extension="100")).pk)
"""


def test_call_page_renders_waveform_and_transcript(chrome, asgi_server):  # noqa: F811
    call_id = asgi_server.shell(SEED).splitlines()[-1]
    login(chrome, asgi_server.url, asgi_server.username, asgi_server.password)
    chrome.get(f"{asgi_server.url}/calls/")
    chrome.find_element(By.CSS_SELECTOR, f'tr[data-call="{call_id}"] a.call-link').click()
    WebDriverWait(chrome, 15).until(EC.presence_of_element_located((By.ID, "wave")))
    assert len(chrome.find_elements(By.CSS_SELECTOR, "#wave path.lane")) == 2
    lines = chrome.find_elements(By.CSS_SELECTOR, "#transcript .line[data-t]")
    assert len(lines) == 5 and "book an appointment" in chrome.find_element(By.ID, "transcript").text
    assert len(chrome.find_elements(By.CSS_SELECTOR, "svg.turnbar rect.seg")) == 2 * 6
    assert chrome.find_elements(By.CSS_SELECTOR, ".badge.fallback")
    WebDriverWait(chrome, 15).until(lambda d: d.execute_script(
        "return document.getElementById('player').dataset.loaded === '1';"))
    target = float(lines[3].get_attribute("data-t"))
    lines[3].click()  # play from the caller's second line
    WebDriverWait(chrome, 15).until(lambda d: d.execute_script(
        "return document.getElementById('player').currentTime;") >= target)
    # the highlight follows the player's events, which may arrive after currentTime moved: wait for it
    WebDriverWait(chrome, 15).until(lambda d: d.execute_script(
        "return document.querySelector('#transcript .line.playing') !== null;"))
    playing = chrome.find_element(By.CSS_SELECTOR, "#transcript .line.playing")
    assert float(playing.get_attribute("data-t")) >= target
    errors = [e for e in chrome.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert not errors  # no JavaScript error


def _wait_ws(driver) -> None:
    WebDriverWait(driver, 15).until(lambda d: d.execute_script(
        "const el = document.getElementById('live');"
        "return !!(el && el['htmx-internal-data'] && el['htmx-internal-data'].webSocket"
        " && el['htmx-internal-data'].webSocket.socket.readyState === 1);"))


def test_turn_settings_saved_in_one_tab_appear_in_another(chrome, asgi_server):  # noqa: F811
    base = asgi_server.url
    login(chrome, base, asgi_server.username, asgi_server.password)
    chrome.get(f"{base}/ai-options/")
    _wait_ws(chrome)
    tab_a = chrome.current_window_handle
    chrome.switch_to.new_window("tab")
    chrome.get(f"{base}/ai-options/")
    _wait_ws(chrome)
    tab_b = chrome.current_window_handle
    chrome.switch_to.window(tab_a)
    for name, value in (("filler_ms", "1500"), ("max_call_s", "900"), ("barge_in_min_ms", "250")):
        field = chrome.find_element(By.ID, name)
        field.clear()
        field.send_keys(value)
    chrome.find_element(By.ID, "barge_in").click()  # untick: barge-in off
    chrome.find_element(By.ID, "save-turn").click()
    WebDriverWait(chrome, 10).until(EC.text_to_be_present_in_element((By.ID, "turn-flash"), "saved"))
    chrome.switch_to.window(tab_b)
    WebDriverWait(chrome, 10).until(lambda d: d.find_element(By.ID, "filler_ms").get_attribute("value") == "1500")
    assert chrome.find_element(By.ID, "max_call_s").get_attribute("value") == "900"
    assert not chrome.find_element(By.ID, "barge_in").is_selected()
    db = asgi_server.shell("from aioptions.models import AIConfig; c=AIConfig.objects.get(pk=1); "
                           "print(c.filler_ms, c.max_call_s, c.barge_in_min_ms, c.barge_in)")
    assert db == "1500 900 250 False"
    # an invalid value is refused with the field named, and nothing changes
    chrome.find_element(By.ID, "apology_ms").clear()
    chrome.find_element(By.ID, "apology_ms").send_keys("1200")
    chrome.find_element(By.ID, "save-turn").click()
    WebDriverWait(chrome, 10).until(EC.text_to_be_present_in_element((By.ID, "turn-flash"), "must be less than"))
    assert asgi_server.shell("from aioptions.models import AIConfig; print(AIConfig.objects.get(pk=1).apology_ms)") \
        == "3000"
