import socket

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import AsyncClient, Client

from telephony.models import Call, SipAccount

pytestmark = pytest.mark.django_db(transaction=True)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def staff_client() -> AsyncClient:
    user = await sync_to_async(get_user_model().objects.create_user)("op", password="pw-123456", is_staff=True)
    c = AsyncClient()
    await sync_to_async(c.force_login)(user)
    return c


async def test_start_status_stop_in_process_bridge(settings, tmp_path):
    settings.VAR_DIR = tmp_path  # no heartbeat of some other bridge process on this machine
    c = await staff_client()
    assert (await c.get("/api/v1/sip/status")).json()["status"] == "stopped"
    port = free_udp_port()
    r = await c.post(f"/api/v1/sip/start?port={port}&agent=echo")
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "running" and r.json()["port"] == port
    # it answers SIP on that port
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    sock.sendto(b"OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKq;rport\r\n"
                b"From: <sip:a@x>;tag=1\r\nTo: <sip:100@x>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\r\n",
                ("127.0.0.1", port))
    import asyncio

    data = await asyncio.get_running_loop().run_in_executor(None, sock.recv, 2000)
    assert data.startswith(b"SIP/2.0 200 OK")
    assert (await c.post(f"/api/v1/sip/start?port={port}")).status_code == 409
    assert (await c.get("/api/v1/sip/status")).json()["status"] == "running"
    assert (await c.post("/api/v1/sip/stop")).json() == {"status": "stopped"}
    assert (await c.post("/api/v1/sip/stop")).status_code == 409


@pytest.mark.parametrize("query,fragment", [("port=abc", "integer"), ("port=70000", "between"),
                                            ("agent=nope", "unknown agent")])
async def test_start_rejects_bad_input(query, fragment):
    c = await staff_client()
    r = await c.post(f"/api/v1/sip/start?{query}")
    assert r.status_code == 400 and fragment in r.json()["error"]


def test_start_needs_staff(db):
    assert Client().post("/api/v1/sip/start").status_code == 401


def test_sip_account_admin_stores_only_ha1(db):
    admin = get_user_model().objects.create_superuser("root", password="pw-123456")
    c = Client()
    c.force_login(admin)
    r = c.post("/admin/telephony/sipaccount/add/", {"username": "alice", "realm": "talky", "active": "on",
                                                    "password": "s3cret-pass"})
    assert r.status_code == 302
    acc = SipAccount.objects.get(username="alice")
    import hashlib

    assert acc.ha1 == hashlib.md5(b"alice:talky:s3cret-pass").hexdigest()
    assert "s3cret-pass" not in str(SipAccount.objects.values().get())


def test_call_admin_has_a_recording_player(db, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / "c.wav").write_bytes(b"RIFF0000WAVE")
    call = Call.objects.create(sip_call_id="x", recording="recordings/c.wav")
    admin = get_user_model().objects.create_superuser("root", password="pw-123456")
    c = Client()
    c.force_login(admin)
    html = c.get(f"/admin/telephony/call/{call.pk}/change/").content.decode()
    assert f'<audio controls preload="none" src="/calls/{call.pk}/recording.wav">' in html
    r = c.get(f"/calls/{call.pk}/recording.wav")
    assert r.status_code == 200 and r["Content-Type"] == "audio/wav"
    assert Client().get(f"/calls/{call.pk}/recording.wav").status_code == 302  # staff only


def test_status_reports_a_separate_bridge_process(db, settings, tmp_path):
    import json
    import os
    import time

    settings.VAR_DIR = tmp_path
    settings.API_LOOPBACK_READS = True  # the health-check style read: curl from the box, no login
    c = Client()
    (tmp_path / "sip_bridge.json").write_text(json.dumps({"status": "running", "calls": 3, "pid": os.getpid(),
                                                          "at": time.time()}))
    data = c.get("/api/v1/sip/status", REMOTE_ADDR="127.0.0.1").json()
    assert data["status"] == "running" and data["calls"] == 3 and data["where"] == "run_sip_bridge process"
    (tmp_path / "sip_bridge.json").write_text(json.dumps({"status": "running", "pid": os.getpid(), "at": 0}))
    assert c.get("/api/v1/sip/status").json()["status"] == "stopped"  # stale heartbeat: not running
