"""The tools/actions API through the aioptions.http input layer: token auth, JSON errors, schema
checked when saved, header values and the secret never echoed (except a rotated secret, once)."""

import pytest
from django.contrib.auth import get_user_model

from aioptions.models import ApiToken
from campaigns.models import Campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client):
    user = get_user_model().objects.create_user("ops", password="x", is_staff=True)
    raw = ApiToken.issue(user)[1] if hasattr(ApiToken, "issue") else None
    if raw is None:
        client.force_login(user)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"} if raw else {}
    return client, headers


def test_tool_crud_and_validation(api, settings):
    client, h = api
    c = Campaign.objects.create(name="A", extension="100")
    url = f"/api/v1/campaigns/{c.pk}/tools"
    bad = client.post(url, {"name": "book", "url": "http://10.0.0.5/x"}, content_type="application/json", **h)
    assert bad.status_code == 400 and bad.json()["field"] == "url"
    bad = client.post(url, {"name": "book", "url": "https://api.example.com/x", "parameters": {"type": "array"}},
                      content_type="application/json", **h)
    assert bad.status_code == 400 and bad.json()["field"] == "parameters"
    ok = client.post(url, {"name": "book", "url": "https://api.example.com/x", "headers": {"X-Key": "hidden"}},
                     content_type="application/json", **h)
    assert ok.status_code == 201 and "hidden" not in ok.content.decode()
    assert client.get(url, **h).json()[0]["name"] == "book"
    acts = client.patch(f"/api/v1/campaigns/{c.pk}/actions", {"builtins": ["end_call", "send_dtmf"],
                        "extraction_schema": {"confirmed": "boolean"}}, content_type="application/json", **h)
    assert acts.status_code == 200 and acts.json()["builtins"] == ["end_call", "send_dtmf"]
    assert "signing_secret" not in acts.json()
    secret = client.post(f"/api/v1/campaigns/{c.pk}/actions/rotate-secret", **h).json()["signing_secret"]
    assert len(secret) == 64
    assert client.get(f"/api/v1/campaigns/{c.pk + 99}/tools", **h).status_code == 404
