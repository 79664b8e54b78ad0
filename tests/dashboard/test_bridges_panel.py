"""The calls dashboard's Bridges panel (issue 17): every node with its state, calls / capacity,
load and heartbeat age, read through the dashboard selector."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from telephony.dashboard import selectors
from telephony.models import BridgeNode


def seed_nodes():
    now = timezone.now()
    old = now - timedelta(seconds=settings.SIP_NODE_TIMEOUT_S + 30)

    def node(name, **kw):
        fields = {"host": "10.0.0.1", "sip_port": 5060, "pid": 1, "heartbeat_at": now, **kw}
        n = BridgeNode.objects.create(name=name, **fields)
        BridgeNode.objects.filter(pk=n.pk).update(heartbeat_at=fields["heartbeat_at"])  # no auto field touches it
        return n

    node("live-a", host="10.0.0.2", sip_port=5070, max_calls=40, live_calls=10)
    node("drain-b", draining=True, max_calls=100, live_calls=3)
    node("dead-c", heartbeat_at=old, live_calls=7)
    node("stopped-d", stopped_at=now - timedelta(minutes=5), live_calls=0)
    node("gone-e", stopped_at=now - timedelta(hours=3))  # stopped long ago: not shown
    node("nocap-f", max_calls=0)
    return now


@pytest.mark.django_db
def test_selector_names_each_state():
    seed_nodes()
    by_name = {n["name"]: n for n in selectors.bridge_nodes()}
    assert {k: v["state"] for k, v in by_name.items()} == {
        "live-a": "live", "drain-b": "draining", "dead-c": "dead", "stopped-d": "stopped", "nocap-f": "live"}
    assert by_name["live-a"]["load_pct"] == 25 and by_name["live-a"]["calls"] == 10
    assert by_name["nocap-f"]["load_pct"] is None
    assert by_name["dead-c"]["heartbeat_age_s"] >= settings.SIP_NODE_TIMEOUT_S + 30


@pytest.mark.django_db
def test_dashboard_renders_bridges_panel():
    seed_nodes()
    user = get_user_model().objects.create_user("op", password="pw-123456", is_staff=True)
    c = Client()
    c.force_login(user)
    html = c.get("/calls/").content.decode()
    panel = html[html.index('id="bridges"'):html.index('id="calls-body"')]
    rows = {name: state for state, name in
            re.findall(r'<tr data-node="\d+" data-state="(\w+)"><td>([\w-]+)</td>', panel)}
    assert rows == {
        "live-a": "live", "drain-b": "draining", "dead-c": "dead", "stopped-d": "stopped", "nocap-f": "live"}
    assert "10.0.0.2:5070" in panel and "10 / 40" in panel and "25 %" in panel and "gone-e" not in panel
    assert re.search(r"\b(4[5-9]|[5-9]\d) s ago", panel)  # the dead node's heartbeat age
    # the filter partial (htmx) stays just the calls body
    part = c.get("/calls/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="bridges"' not in part


@pytest.mark.django_db
def test_empty_fleet_says_so():
    user = get_user_model().objects.create_user("op", password="pw-123456", is_staff=True)
    c = Client()
    c.force_login(user)
    assert "No bridge has registered" in c.get("/calls/").content.decode()
