"""Contacts: CSV and JSON import (bad rows by line and reason, duplicates skipped, E.164), the
do-not-call list, the admin CSV import, and {variables} in the greeting and prompt."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns.models import Contact, DoNotCall
from campaigns.outbound import call_context, render

pytestmark = pytest.mark.django_db

CSV = """phone,name,first_name,timezone,appointment
+1 201-555-0123,Ana Lopez,Ana,,Tuesday 3 pm
(201) 555-0124,Bob,Bob,Europe/Nowhere,
2015550125,Cy,Cy,America/Chicago,
+12015550123,Ana again,Ana,,
not a number,Dee,Dee,,
,Eve,Eve,,
+442079460958,Flo,Flo,,
"""


def test_csv_import_reports_bad_rows_by_line(client, auth, campaign):
    r = client.post(f"/api/v1/campaigns/{campaign.pk}/contacts?region=US", data=CSV, content_type="text/csv", **auth)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["imported"] == 3 and body["duplicates"] == 1 and body["duplicate_rows"] == [
        {"line": 5, "phone": "+12015550123"}]
    assert [(e["line"], e["reason"].split(" ")[0]) for e in body["errors"]] == [
        (3, "unknown"), (6, "not"), (7, "phone")]
    ana = Contact.objects.get(phone="+12015550123")
    assert ana.name == "Ana Lopez" and ana.timezone == "America/New_York"  # derived from the number
    assert ana.variables == {"first_name": "Ana", "appointment": "Tuesday 3 pm"}
    assert Contact.objects.get(phone="+12015550125").timezone == "America/Chicago"
    assert Contact.objects.get(phone="+442079460958").timezone == "Europe/London"
    # the same file again: all duplicates, nothing new
    again = client.post(f"/api/v1/campaigns/{campaign.pk}/contacts?region=US", data=CSV, content_type="text/csv",
                        **auth).json()
    assert again["imported"] == 0 and again["duplicates"] == 4 and Contact.objects.count() == 3


def test_json_import_and_dnc(client, auth, campaign):
    r = client.post("/api/v1/dnc", data=json.dumps({"phone": "+1 201 555 0199", "reason": "asked"}),
                    content_type="application/json", **auth)
    assert r.status_code == 201 and r.json()["phone"] == "+12015550199"
    rows = [{"phone": "+12015550199", "name": "No"}, {"phone": "+12015550198", "first_name": "Yes",
                                                      "variables": {"plan": "gold"}}, {"name": "no phone"}, 5]
    r = client.post(f"/api/v1/campaigns/{campaign.pk}/contacts", data=json.dumps(rows),
                    content_type="application/json", **auth)
    body = r.json()
    assert body["imported"] == 2 and [e["line"] for e in body["errors"]] == [3, 4]
    assert Contact.objects.get(phone="+12015550199").state == "dnc"
    assert Contact.objects.get(phone="+12015550198").variables == {"plan": "gold", "first_name": "Yes"}
    # adding a number to DNC later stops its pending contacts
    client.post("/api/v1/dnc", data=json.dumps({"phone": "+12015550198"}), content_type="application/json", **auth)
    assert Contact.objects.get(phone="+12015550198").state == "dnc"
    assert client.get(f"/api/v1/campaigns/{campaign.pk}/contacts", **auth).status_code == 200


@pytest.mark.parametrize("ctype,data,status", [
    ("text/csv", "name\nx\n", 400),  # no phone column
    ("text/csv", b"phone\n\xff\xfe\n", 400),
    ("application/json", "{\"contacts\": 5}", 400),
    ("text/plain", "phone\n+12015550123\n", 415),
])
def test_bad_payloads(client, auth, campaign, ctype, data, status):
    r = client.post(f"/api/v1/campaigns/{campaign.pk}/contacts", data=data, content_type=ctype, **auth)
    assert r.status_code == status, r.content
    assert Contact.objects.count() == 0


def test_unknown_campaign_is_404(client, auth):
    r = client.post("/api/v1/campaigns/999/contacts", data="phone\n+12015550123\n", content_type="text/csv", **auth)
    assert r.status_code == 404


def test_admin_csv_import(client, campaign):
    admin = get_user_model().objects.create_superuser("root", password="pw-123456")
    client.force_login(admin)
    assert client.get("/admin/campaigns/contact/").status_code == 200
    upload = SimpleUploadedFile("c.csv", CSV.encode(), content_type="text/csv")
    r = client.post("/admin/campaigns/contact/import/", {"campaign": campaign.pk, "file": upload,
                                                         "default_region": "US"})
    assert r.status_code == 200 and b"3 imported, 1 duplicate(s) skipped, 3 bad row(s)" in r.content
    assert b"unknown timezone" in r.content and Contact.objects.count() == 3
    r = client.post("/admin/campaigns/donotcall/add/", {"phone": "+1 (201) 555-0100", "reason": "x"})
    assert r.status_code == 302 and DoNotCall.objects.get().phone == "+12015550100"
    assert client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").status_code == 200


def test_variables_fill_greeting_and_prompt(campaign):
    assert render("Hi {first_name}, about {appointment}. {missing} {0.__class__}", {
        "first_name": "Ana", "appointment": "Tuesday"}) == "Hi Ana, about Tuesday. {missing} {0.__class__}"
    campaign.greeting = "Hi {first_name}, this is Acme."
    campaign.save()
    ctx = call_context(campaign.pk, {"first_name": "Ana", "name": "Ana Lopez"})
    assert ctx["greeting"] == "Hi Ana, this is Acme." and "outbound call: you placed it to Ana Lopez" in \
        ctx["system_prompt"]
