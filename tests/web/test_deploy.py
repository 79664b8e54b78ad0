"""`manage.py check --deploy` passes with the production settings the README documents (HTTPS
behind a TLS-terminating proxy), and the development defaults are reported, not hidden."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {  # README "Production (HTTPS behind a reverse proxy)"
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_HTTPS": "1",
    "ALLOWED_HOSTS": "talky.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://talky.example.com",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
}


def check_deploy(tmp_path, extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_DEBUG", "API_LOOPBACK_READS")}
    env.update(TALKY_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="talky.settings", **extra)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_passes_with_the_documented_production_settings(tmp_path):
    out = check_deploy(tmp_path, PRODUCTION)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_development_defaults_are_flagged(tmp_path):
    out = check_deploy(tmp_path, {"DJANGO_SECRET_KEY": PRODUCTION["DJANGO_SECRET_KEY"]})
    assert out.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in out.stderr + out.stdout
