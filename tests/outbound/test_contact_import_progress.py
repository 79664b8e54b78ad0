"""Chunked admin CSV import with progress (issue 20): a large file is stored and imported chunk by
chunk by HTMX polls, ending with the same result as a one-shot import."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns import contacts, import_jobs
from campaigns.models import Campaign, Contact, DoNotCall

pytestmark = pytest.mark.django_db
URL = "/admin/campaigns/contact/import/"


def big_csv(n: int = 1200) -> str:
    lines = ["phone,name,timezone,plan"]
    for i in range(n):
        phone, tz = f"+1 201 555 {i % 10000:04d}", ""
        if i % 97 == 5:
            phone = "not a number"
        elif i % 150 == 149:
            phone = f"+1 201 555 {i - 520:04d}"  # a duplicate of a row two chunks earlier
        elif i % 211 == 7:
            tz = "Mars/Olympus"
        lines.append(f"{phone},Person {i},{tz},gold")
    return "\n".join(lines) + "\n"


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def admin_client(client, media):
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-123456"))
    return client


def upload(client, campaign, text):
    return client.post(URL, {"campaign": campaign.pk, "default_region": "US",
                             "file": SimpleUploadedFile("big.csv", text.encode(), content_type="text/csv")})


def progress(html: str) -> tuple[int, int, int]:
    m = re.search(r"(\d+) of (\d+) rows, (\d+) error", html)
    return int(m[1]), int(m[2]), int(m[3])


def test_chunked_import_matches_one_shot(admin_client, campaign, media):
    DoNotCall.objects.create(phone="+12015550010")
    text = big_csv()
    r = upload(admin_client, campaign, text)
    assert r.status_code == 302 and "/import/" in r["Location"]
    page = admin_client.get(r["Location"]).content.decode()
    assert progress(page) == (0, 1200, 0) and 'hx-trigger="load"' in page and "X-CSRFToken" in page
    assert Contact.objects.count() == 0  # GET only shows progress
    step_url = r["Location"] + "step/"
    seen = []
    for _ in range(10):
        html = admin_client.post(step_url, HTTP_HX_REQUEST="true").content.decode()
        seen.append(progress(html))
        if 'data-finished="1"' in html:
            break
    assert [s[0] for s in seen] == [500, 1000, 1200] and all(s[1] == 1200 for s in seen)
    assert [s[2] for s in seen] == sorted(s[2] for s in seen)  # errors only grow
    assert "hx-post" not in html and not list(media.glob("jobs/*.input"))  # done: no more polls, file removed

    # the same file in one go, into a second campaign
    other = Campaign.objects.create(name="Other", extension="300")
    once = contacts.import_contacts(other.pk, contacts.parse_csv(text), default_region="US")
    job = import_jobs.state(r["Location"].rstrip("/").rsplit("/", 1)[1], get_user_model().objects.get().pk)
    for key in ("imported", "duplicates", "duplicate_rows", "errors", "error_count"):
        assert job[key] == once[key], key
    assert once["error_count"] > 0 and once["duplicates"] > 0 and seen[-1][2] == once["error_count"]
    assert f"{once['imported']} imported, {once['duplicates']} duplicate(s) skipped" in html
    first_err = once["errors"][0]
    assert f"<td>{first_err['line']}</td><td>{first_err['reason']}</td>" in html
    cols = ("phone", "name", "timezone", "state", "variables")
    assert sorted(Contact.objects.filter(campaign=campaign).values_list(*cols)) == sorted(
        Contact.objects.filter(campaign=other).values_list(*cols))
    assert Contact.objects.get(campaign=campaign, phone="+12015550010").state == "dnc"
    # a further step is harmless
    again = admin_client.post(step_url, HTTP_HX_REQUEST="true").content.decode()
    assert progress(again) == seen[-1] and Contact.objects.filter(campaign=campaign).count() == once["imported"]


def test_without_javascript_the_continue_button_steps(admin_client, campaign):
    r = upload(admin_client, campaign, big_csv(600))
    assert "<noscript>" in admin_client.get(r["Location"]).content.decode()
    s = admin_client.post(r["Location"] + "step/")
    assert s.status_code == 302 and s["Location"] == r["Location"]
    assert progress(admin_client.get(r["Location"]).content.decode())[0] == 500
    assert admin_client.get(r["Location"] + "step/").status_code == 302  # GET never imports
    assert progress(admin_client.get(r["Location"]).content.decode())[0] == 500


def test_small_files_still_import_at_once(admin_client, campaign):
    r = upload(admin_client, campaign, big_csv(400))
    assert r.status_code == 200 and b"imported" in r.content and Contact.objects.count() > 300


def test_non_staff_and_other_users_are_refused(client, campaign, media):
    admin = get_user_model().objects.create_superuser("root", password="pw-123456")
    client.force_login(admin)
    token = upload(client, campaign, big_csv(600))["Location"].rstrip("/").rsplit("/", 1)[1]
    joe = get_user_model().objects.create_user("joe", password="pw-123456")
    client.force_login(joe)  # not staff: the admin sends him to its login page
    assert upload(client, campaign, big_csv(600)).status_code == 302
    for url in (f"{URL}{token}/", f"{URL}{token}/step/"):
        r = client.post(url, HTTP_HX_REQUEST="true")
        assert r.status_code == 302 and "/login/" in r["Location"]
    staff = get_user_model().objects.create_user("op", password="pw-123456", is_staff=True)
    client.force_login(staff)  # staff without the add permission
    assert client.post(f"{URL}{token}/step/", HTTP_HX_REQUEST="true").status_code == 403
    other = get_user_model().objects.create_superuser("root2", password="pw-123456")
    client.force_login(other)  # someone else's job is not found
    assert client.post(f"{URL}{token}/step/", HTTP_HX_REQUEST="true").status_code == 404
    assert client.get(f"{URL}..secret/").status_code == 404  # not a token: never a path
    assert Contact.objects.count() == 0 and len(list(media.glob("jobs/*.input"))) == 1
