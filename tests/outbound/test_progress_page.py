"""The dialer's live progress page (staff only) and the partial it polls: counts by state and
outcome, calls now, next attempt times; the same numbers as the JSON progress endpoint."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from campaigns.models import Contact

pytestmark = pytest.mark.django_db


def cells(html: str, attr: str, key: str) -> list[str]:
    row = re.search(rf'<tr {attr}="{re.escape(key)}">(.*?)</tr>', html, re.S)
    assert row, f"no row {attr}={key}"
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row.group(1), re.S)]


def stat(html: str, key: str) -> str:
    m = re.search(rf'data-k="{key}">([^<]*)<', html)
    assert m, key
    return m.group(1)


@pytest.fixture
def contacts(campaign):
    soon = timezone.now() + dt.timedelta(hours=2)
    later = timezone.now() + dt.timedelta(hours=5)
    rows = [
        Contact(campaign=campaign, phone="+12015550101"),  # pending, due now
        Contact(campaign=campaign, phone="+12015550102", attempts=1, last_outcome="busy", next_attempt_at=later),
        Contact(campaign=campaign, phone="+12015550103", attempts=1, last_outcome="no-answer", next_attempt_at=soon),
        Contact(campaign=campaign, phone="+12015550104", state=Contact.State.CALLING, attempts=1),
        Contact(campaign=campaign, phone="+12015550105", state=Contact.State.DONE, attempts=2,
                last_outcome="answered"),
        Contact(campaign=campaign, phone="+12015550106", state=Contact.State.FAILED, attempts=3,
                last_outcome="busy"),
    ]
    Contact.objects.bulk_create(rows)
    return {c.phone: c for c in Contact.objects.filter(campaign=campaign)}


def test_page_renders_counts_for_staff(client, staff, campaign, contacts):
    client.force_login(staff)
    r = client.get(f"/campaigns/{campaign.pk}/progress/")
    assert r.status_code == 200
    html = r.content.decode()
    assert campaign.name in html
    assert f'hx-get="/campaigns/{campaign.pk}/progress/partial/"' in html and 'hx-trigger="every 2s"' in html
    assert "vendor/htmx/htmx-2.0.11.min.js" in html and "unpkg" not in html  # vendored, no CDN
    assert stat(html, "state") == "stopped"
    assert (stat(html, "contacts"), stat(html, "calls_now"), stat(html, "due_now"), stat(html, "attempts")) == \
        ("6", "1", "1", "8")
    assert cells(html, "data-state", "pending") == ["waiting for a call", "3"]
    assert cells(html, "data-state", "calling") == ["call in progress", "1"]
    assert cells(html, "data-state", "done")[1] == "1" and cells(html, "data-state", "failed")[1] == "1"
    assert cells(html, "data-state", "dnc")[1] == "0"
    assert cells(html, "data-outcome", "busy") == ["busy", "2"]
    assert cells(html, "data-outcome", "no-answer")[1] == "1" and cells(html, "data-outcome", "answered")[1] == "1"
    # next attempts: soonest first, with the contact and its number
    soon, later = contacts["+12015550103"], contacts["+12015550102"]
    assert re.findall(r'data-next="(\d+)"', html) == [str(soon.pk), str(later.pk)]
    assert "+12015550103" in cells(html, "data-next", str(soon.pk))


def test_same_numbers_as_the_json_endpoint(client, staff, auth, campaign, contacts):
    data = client.get(f"/api/v1/campaigns/{campaign.pk}/progress", **auth).json()
    client.force_login(staff)
    html = client.get(f"/campaigns/{campaign.pk}/progress/partial/").content.decode()
    for key, n in data["by_state"].items():
        assert cells(html, "data-state", key)[1] == str(n), key
    for outcome, n in data["by_outcome"].items():
        assert cells(html, "data-outcome", outcome)[1] == str(n), outcome
    assert stat(html, "calls_now") == str(data["calls_now"]) and stat(html, "due_now") == str(data["due_now"])


def test_partial_returns_updated_numbers(client, staff, campaign, contacts):
    client.force_login(staff)
    url = f"/campaigns/{campaign.pk}/progress/partial/"
    before = client.get(url).content.decode()
    assert "<html" not in before and stat(before, "calls_now") == "1"
    # the dialer moves on: the call ends answered, the due contact is claimed
    Contact.objects.filter(pk=contacts["+12015550104"].pk).update(
        state=Contact.State.DONE, last_outcome="answered")
    Contact.objects.filter(pk=contacts["+12015550101"].pk).update(state=Contact.State.CALLING, attempts=1)
    after = client.get(url).content.decode()
    assert stat(after, "calls_now") == "1" and stat(after, "due_now") == "0" and stat(after, "attempts") == "9"
    assert cells(after, "data-state", "pending")[1] == "2" and cells(after, "data-state", "done")[1] == "2"
    assert cells(after, "data-outcome", "answered")[1] == "2"


@pytest.mark.parametrize("suffix", ["", "partial/"])
def test_non_staff_redirected_or_forbidden(client, campaign, suffix):
    url = f"/campaigns/{campaign.pk}/progress/{suffix}"
    r = client.get(url)
    assert r.status_code == 302 and "/admin/login/" in r["Location"]  # anonymous: to the login
    joe = get_user_model().objects.create_user("joe", password="pw-123456", is_staff=False)
    client.force_login(joe)
    r = client.get(url)
    assert r.status_code in (302, 403) and "Dialer" not in r.content.decode()
    if r.status_code == 302:
        assert "/admin/login/" in r["Location"]


def test_unknown_campaign_is_404(client, staff):
    client.force_login(staff)
    assert client.get("/campaigns/999999/progress/").status_code == 404
    assert client.get("/campaigns/999999/progress/partial/").status_code == 404


def test_admin_list_links_to_the_page(client, staff, campaign):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    html = client.get("/admin/campaigns/campaign/").content.decode()
    assert f'href="/campaigns/{campaign.pk}/progress/"' in html
