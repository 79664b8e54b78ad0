"""No secret in any log line, page or error, and no unbounded or forged log line: a real daphne
process with planted provider keys, a planted SIP password, a real API token, probed the way an
attacker and an operator would; then its whole log and every response body are grepped."""

import logging
import re

import httpx
import pytest

from tests.asgi_server import start_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

PLANTED = {
    "DEEPGRAM_API_KEY": "dgPLANTEDdeepgram0001",
    "GROQ_API_KEY": "gsk_PLANTEDgroq0002",
    "OPENAI_API_KEY": "sk-PLANTEDopenai0003",
    "CARTESIA_API_KEY": "sk_car_PLANTEDcartesia0004",
    "DJANGO_SECRET_KEY": "PLANTED-django-secret-key-0005-" + "x" * 40,
}
SIP_PASSWORD = "PLANTEDsippass0006"
DEAD = "http://127.0.0.1:9"
ACCESS_LOG = re.compile(r'^[0-9.:]+ - - \[[^]]+\] "')  # discard port: connection refused, nothing leaves the box


@pytest.fixture
def server(tmp_path):
    env = dict(PLANTED, GROQ_BASE_URL=DEAD, OPENAI_BASE_URL=DEAD + "/v1", CARTESIA_BASE_URL=DEAD,
               CARTESIA_WS_URL="ws://127.0.0.1:9", DEEPGRAM_URL="ws://127.0.0.1:9/v2/listen", LOG_LEVEL="DEBUG")
    proc, srv = start_server(tmp_path, env)
    try:
        yield srv
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _login(client: httpx.Client, username: str, password: str) -> None:
    page = client.get("/admin/login/").text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    r = client.post("/admin/login/?next=/admin/", data={"username": username, "password": password,
                                                         "csrfmiddlewaretoken": token})
    assert r.status_code == 302, r.text[:300]


def test_planted_secrets_never_reach_logs_pages_or_errors(server, caplog):
    caplog.set_level(logging.WARNING, logger="httpx")  # our own client's request log is not the subject
    ha1 = server.shell(
        "from telephony.models import SipAccount; a = SipAccount(username='alice', realm='talky'); "
        f"a.set_password('{SIP_PASSWORD}'); a.save(); print(a.ha1)")
    api_token = server.manage("create_api_token", "admin").strip().split()[-1]
    secrets = [*PLANTED.values(), SIP_PASSWORD, ha1, api_token]
    bodies: list[str] = []
    auth = {"Authorization": f"Bearer {api_token}"}
    with httpx.Client(base_url=server.url, timeout=30) as c:
        _login(c, server.username, server.password)
        for path in ("/ai-options/", "/admin/telephony/sipaccount/", "/admin/telephony/sipaccount/1/change/",
                     "/admin/aioptions/apitoken/", "/admin/aioptions/aiconfig/1/change/", "/calls/"):
            r = c.get(path)
            assert r.status_code == 200, (path, r.status_code)
            bodies.append(r.text)
        with httpx.Client(base_url=server.url, timeout=30) as api:
            for path in ("/api/v1/ai-options/providers", "/api/v1/ai-options/config", "/api/v1/sip/status"):
                bodies.append(api.get(path, headers=auth).text)
            # provider failures with the planted key configured: the error a client sees
            r = api.get("/api/v1/ai-options/voices/f786b574-daa5-4673-aa0c-cbe3e8534c02/preview?text=hi",
                        headers=auth)
            assert r.status_code == 502 and r.json()["error"]
            bodies.append(r.text)
            # attacker-shaped requests: credentials in odd places, forged log lines, huge values
            for headers in ({"Authorization": f"Basic {api_token}"}, {"Authorization": "Bearer " + "A" * 300},
                            {"Authorization": f"Digest username=\"alice\", response=\"{ha1}\""}):
                bodies.append(api.get("/api/v1/ai-options/config", headers=headers).text)
            forged = "/api/v1/x%0A2026-01-01 00:00:00 CRITICAL forged: admin logged in" + "%41" * 3000
            bodies.append(api.get(forged).text)
            r = api.post("/api/v1/ai-options/config", headers={**auth, "Content-Type": "application/json"},
                         content=b'{"turn": {"eot_timeout_ms": ' + b"9" * 401 + b"}}")
            assert r.status_code == 400
            bodies.append(r.text)
    log = (server.var_dir / "daphne.log").read_text()
    logged = next(line for line in log.splitlines() if "Not Found: /api/v1/x" in line)  # logged...
    assert "…(+" in logged and len(logged) < 400  # ...clipped
    for line in log.splitlines():
        assert not line.startswith("2026-01-01 00:00:00 CRITICAL forged"), line[:200]  # ...on one escaped line
        if ACCESS_LOG.match(line):
            continue  # daphne's own access log: percent-encoded by daphne, written outside logging
        assert len(line) < 600 or line.startswith(("  ", "Traceback")), line[:200]
    for secret in secrets:
        assert secret not in log, f"secret {secret[:6]}… in the server log"
        for body in bodies:
            assert secret not in body, f"secret {secret[:6]}… in a response"
