"""A real daphne process serving the project (HTTP + WebSockets) on 127.0.0.1 for browser tests.

pytest-django's live_server is WSGI-only, so pages that use the WebSocket need this. The server
gets its own SQLite database in a temp dir (bootstrap runs there: admin user + demo campaign);
REDIS_URL, when set, is kept with a private prefix so the Redis channel layer is exercised too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "browser-test-pw-1"


@dataclass
class AsgiServer:
    url: str
    var_dir: Path
    env: dict
    username: str = "admin"
    password: str = PASSWORD

    def manage(self, *args: str, timeout: float = 60) -> str:
        """Run a management command against the server's database; returns stdout."""
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, timeout=timeout,
                             capture_output=True, text=True, check=True)
        return out.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "--no-imports", "-c", code).strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, extra_env: dict | None = None):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(TALKY_VAR_DIR=str(tmp), TALKY_ADMIN_PASSWORD=PASSWORD, DJANGO_SETTINGS_MODULE="talky.settings",
               REDIS_PREFIX=f"talky-test-{os.getpid()}-{tmp.name}", PYTHONUNBUFFERED="1")
    env.update(extra_env or {})
    for args in (["migrate", "--noinput", "-v0"], ["bootstrap", "--quiet"]):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, timeout=120)
    port = _free_port()
    log = open(tmp / "daphne.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                             "talky.asgi:application"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daphne exited: {(tmp / 'daphne.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("daphne did not start within 30 s")
    return proc, AsgiServer(url=f"http://127.0.0.1:{port}", var_dir=tmp, env=env)


@pytest.fixture
def asgi_server(tmp_path):
    proc, server = start_server(tmp_path)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
