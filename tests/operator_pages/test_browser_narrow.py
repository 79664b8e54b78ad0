"""The operator pages on a phone-sized screen (issue 20: "usable on a narrow screen", "no JavaScript
errors"), in real headless Chromium emulating a 375 px wide mobile viewport: the options page (with
its Talk panel and turn settings), the calls list and a call page, the dialer's progress page, a
bulk-action job's and a contact import's progress pages. Each must fit the width (no sideways
scrolling of the page: wide tables scroll inside their own box) and log no SEVERE console message."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.asgi_server import asgi_server  # noqa: F401
from tests.browser import _available, login, make_driver

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WIDTH = 375

SEED = r"""
from django.conf import settings
from django.contrib.auth import get_user_model
from campaigns import bulk_actions, import_jobs
from campaigns.models import Campaign, Contact
from tests.operator_pages.seed import seed_call
camp = Campaign.objects.get(extension="100")
call = seed_call(settings.MEDIA_ROOT, camp)
Contact.objects.bulk_create(Contact(campaign=camp, phone=f"+1201555{i:04d}", state="failed") for i in range(600))
ids = list(Contact.objects.values_list("pk", flat=True))
admin = get_user_model().objects.get(username="admin")
token = bulk_actions.start("contacts_requeue", ids, admin)
csv = "phone,name\n" + "".join(f"+1202555{i:04d},P{i}\n" for i in range(600)) + "not a number,Bad\n"
imp = import_jobs.start(csv, 601, campaign_id=camp.pk, default_region="US", user_id=admin.pk)
print(call.pk, camp.pk, token, imp)
"""


@pytest.fixture
def phone():
    reason = _available()
    if reason:
        pytest.skip(reason)
    driver = make_driver(WIDTH, 800)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": 800, "deviceScaleFactor": 2, "mobile": True})
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _misfit(driver) -> dict:
    """How the page fails to fit a WIDTH screen: wider than the viewport, or (a mobile browser zooms
    out to show wide content, or lays out a page without a viewport tag at 980 px) a layout
    viewport wider than the screen. Empty when it fits."""
    width, over = driver.execute_script(
        "return [window.innerWidth,"
        " Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - window.innerWidth];")
    return {k: v for k, v in (("viewport_px", width if width != WIDTH else 0), ("overflow_px", over)) if v > 0}


def _severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]


def test_pages_fit_a_375px_screen_without_console_errors(phone, asgi_server):  # noqa: F811
    call_id, campaign_id, token, import_token = asgi_server.shell(SEED).splitlines()[-1].split()
    login(phone, asgi_server.url, asgi_server.username, asgi_server.password)
    assert phone.execute_script("return window.innerWidth;") == WIDTH
    pages = {
        "options": ("/ai-options/", "#turn-form", "Talk"),
        "calls": ("/calls/", f'tr[data-call="{call_id}"]', ""),
        "call page": (f"/calls/{call_id}/", "#wave path.lane", ""),
        "dialer progress": (f"/campaigns/{campaign_id}/progress/", "#progress", ""),
        # the progress pages run their jobs from the phone, to the result
        "job progress": (f"/campaigns/jobs/{token}/", '#job-progress[data-finished="1"]', "600 re-queued"),
        "import progress": (f"/admin/campaigns/contact/import/{import_token}/", '#import-progress[data-finished="1"]',
                            "1 bad row(s)"),
    }
    problems = {}
    for name, (path, ready, text) in pages.items():
        phone.get(asgi_server.url + path)
        WebDriverWait(phone, 30).until(lambda d, css=ready: d.find_elements(By.CSS_SELECTOR, css))
        assert text in phone.find_element(By.TAG_NAME, "body").text, name
        misfit, errors = _misfit(phone), _severe(phone)
        if misfit or errors:
            problems[name] = {**misfit, "console": [e["message"][:200] for e in errors]}
    assert not problems, problems
    # the measure itself: a too-wide element is seen
    phone.execute_script("document.body.insertAdjacentHTML('beforeend', '<div style=\"width:600px\">x</div>');")
    assert _misfit(phone)
