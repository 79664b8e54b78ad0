"""Trunks through /api/v1/trunks and the model's number rules: validation names the field, the
password is write-only, the allowlist is the toll-fraud guard."""

import json

import pytest

from campaigns.models import Trunk

pytestmark = pytest.mark.django_db


def send(client, method, url, body, auth):
    return getattr(client, method)(url, data=json.dumps(body), content_type="application/json", **auth)


def test_create_list_patch_delete(client, auth):
    r = send(client, "post", "/api/v1/trunks", {"name": "carrier", "host": "10.0.0.5", "port": 5080,
                                                "username": "acct", "password": "s3cret",
                                                "allowed_prefixes": "+1555, +4420\n+1555"}, auth)
    assert r.status_code == 201, r.content
    t = r.json()
    assert t["allowed_prefixes"] == ["+1555", "+4420"] and t["has_password"] and "password" not in t
    assert t["registration"]["status"] == "off"
    listed = client.get("/api/v1/trunks", **auth).json()
    assert [x["name"] for x in listed] == ["carrier"] and b"s3cret" not in client.get("/api/v1/trunks", **auth).content
    r = send(client, "patch", f"/api/v1/trunks/{t['id']}", {"max_concurrent": 3, "calls_per_second": 2.5}, auth)
    assert r.status_code == 200 and r.json()["max_concurrent"] == 3
    assert client.delete(f"/api/v1/trunks/{t['id']}", **auth).status_code == 200
    assert client.get(f"/api/v1/trunks/{t['id']}", **auth).status_code == 404


@pytest.mark.parametrize("body,field", [
    ({"name": "x", "host": "10.0.0.5", "allowed_prefixes": "+1555,1555"}, "allowed_prefixes"),
    ({"name": "x", "host": "bad host!"}, "host"),
    ({"name": "x", "host": "10.0.0.5", "port": 70000}, "port"),
    ({"name": "x", "host": "10.0.0.5", "from_user": "a b"}, "from_user"),
    ({"name": "x", "host": "10.0.0.5", "inbound_ips": "10.0.0.1,nope"}, "inbound_ips"),
    ({"name": "x", "host": "10.0.0.5", "register": "yes"}, "register"),
    ({"host": "10.0.0.5"}, "name"),
    ({"name": "x", "host": "10.0.0.5", "secret_field": 1}, None),
])
def test_bad_values_are_400_naming_the_field(client, auth, body, field):
    r = send(client, "post", "/api/v1/trunks", body, auth)
    assert r.status_code == 400 and (field is None or r.json()["field"] == field), r.content
    assert not Trunk.objects.exists()


def test_anonymous_is_refused(client):
    assert client.get("/api/v1/trunks").status_code == 401
    assert client.post("/api/v1/trunks", data="{}", content_type="application/json").status_code == 401


def test_allowlist_and_number_format():
    t = Trunk(name="c", host="10.0.0.5", allowed_prefixes="+1555\n+4420")
    assert t.allows("+15551234567") and not t.allows("+19005551234")
    assert not Trunk(name="d", host="10.0.0.5").allows("+15551234567")  # empty: no outbound at all
    t.number_format, t.dial_prefix = Trunk.NumberFormat.DIGITS, "9"
    assert t.user_part("+15551234567") == "915551234567"
