"""Real Chromium with CSRF enforced everywhere: the options page still saves, the page's own
JavaScript can call the API with the token, and the issue's attack — a page on another port that
posts text/plain JSON to /api/v1/ai-options/config with the operator's cookie — is refused."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from tests.asgi_server import asgi_server  # noqa: F401
from tests.browser import chrome, login  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _llm(server) -> str:
    return server.shell("from aioptions.models import AIConfig; c = AIConfig.objects.get(pk=1); "
                        "print(c.llm_provider, c.llm_model, c.version)")


@pytest.fixture
def attacker_site(asgi_server):  # noqa: F811
    """Another origin (same host, other port): its script posts text/plain JSON to our API with
    whatever cookies the browser attaches (a "simple" request: no preflight, no CORS needed)."""
    body = json.dumps({"llm": {"provider": "openai", "model": "gpt-4o-mini"}})
    url = json.dumps(f"{asgi_server.url}/api/v1/ai-options/config")
    page = ("<script>fetch(" + url + ", {method: 'POST', mode: 'no-cors', credentials: 'include', "
            "headers: {'Content-Type': 'text/plain'}, body: " + json.dumps(body) + "})"
            ".then(() => { document.title = 'sent'; }, () => { document.title = 'failed'; });</script>").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_options_page_saves_with_csrf_on_and_cross_origin_post_is_refused(chrome, asgi_server,  # noqa: F811
                                                                           attacker_site):
    base = asgi_server.url
    login(chrome, base, asgi_server.username, asgi_server.password)
    before = _llm(asgi_server)
    assert before.startswith("groq ")

    # the attack: the victim, logged in, visits the other port's page
    chrome.get(attacker_site)
    WebDriverWait(chrome, 15).until(lambda d: d.title == "sent")
    assert _llm(asgi_server) == before  # refused (CSRF): nothing changed

    # the page itself still saves (htmx sends X-CSRFToken from base.html)
    chrome.get(f"{base}/ai-options/")
    Select(chrome.find_element(By.ID, "llm")).select_by_value("openai:gpt-4o-mini")
    chrome.find_element(By.ID, "save").click()
    WebDriverWait(chrome, 10).until(EC.text_to_be_present_in_element((By.ID, "flash"), "Saved"))
    assert _llm(asgi_server).startswith("openai gpt-4o-mini")

    # and the page's JavaScript can use the JSON API with its session + token, but not without the token
    status = chrome.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken'];
        const post = (headers) => fetch('/api/v1/ai-options/config', {method: 'POST', headers: headers,
            body: JSON.stringify({llm: {provider: 'groq', model: 'openai/gpt-oss-120b'}})}).then(r => r.status);
        post({'Content-Type': 'application/json'}).then(without =>
            post({'Content-Type': 'application/json', 'X-CSRFToken': token}).then(withToken =>
                done([without, withToken])));
    """)
    assert status == [403, 200]
    assert _llm(asgi_server).startswith("groq openai/gpt-oss-120b")
