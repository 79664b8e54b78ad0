"""TalkyAI settings: everything comes from the environment, with defaults that run out of the box.

Nothing set -> SQLite under ``var/`` and the in-memory channel layer. ``DATABASE_URL`` switches to
PostgreSQL (psycopg 3), ``REDIS_URL`` to channels-redis so a separate ``run_sip_bridge`` process and
the web process share live events. Provider keys and base URLs are read here and nowhere else.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TALKY_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key() -> str:
    """Use DJANGO_SECRET_KEY, else a random key kept in var/ so sessions survive a restart."""
    key = os.environ.get("DJANGO_SECRET_KEY")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]
CSRF_FAILURE_VIEW = "talky.errors.csrf_failure"  # JSON under /api/, Django's page elsewhere

# --- Behind a reverse proxy / HTTPS (see README "Production") -----------------------------------
# Trust X-Forwarded-Proto only when a proxy you run sets it (and strips it from clients):
# SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https". Same for the forwarded host.
_proxy_ssl = [p.strip() for p in os.environ.get("SECURE_PROXY_SSL_HEADER", "").split(",") if p.strip()]
SECURE_PROXY_SSL_HEADER = (_proxy_ssl[0], _proxy_ssl[1]) if len(_proxy_ssl) == 2 else None
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)
# DJANGO_HTTPS=1: the site is served over HTTPS only (secure cookies, redirect, HSTS).
HTTPS = env_bool("DJANGO_HTTPS", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000" if HTTPS else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)

# --- JSON API input limits and access (aioptions/inputs.py, aioptions/http.py) -------------------
API_MAX_BODY_BYTES = int(os.environ.get("API_MAX_BODY_BYTES", str(64 * 1024)))  # larger bodies: 413
# Catalog/config/status reads without credentials from 127.0.0.1/::1. Off by default: behind a
# proxy on the same box every client looks local (requests carrying X-Forwarded-For/Forwarded are
# never treated as local, but only turn this on for a box with no proxy in front).
API_LOOPBACK_READS = env_bool("API_LOOPBACK_READS", False)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "aioptions",
    "campaigns",
    "telephony",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "talky.urls"
ASGI_APPLICATION = "talky.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=0)
    if os.environ.get("DATABASE_URL")
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "db.sqlite3"}
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The bridge and the web process write concurrently: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    # WAL with synchronous=NORMAL: a commit no longer fsyncs the rollback journal (15.7 ms -> 0.05 ms
    # per commit on this disk). The bridge runs every ORM call on one worker thread, so at 50 calls
    # arriving together the fsyncs queued call set-up and per-turn reads for seconds (issue 18 wire
    # bench: most calls never got a reply). Readers no longer wait for the writer either. NORMAL may
    # lose the last commits on a power cut (never on a crash of the process); PostgreSQL is the
    # production database.
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": os.environ.get("REDIS_PREFIX", "talky")},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Providers: keys and base URLs (a test or a proxy can stand in for every service) ----------
DEEPGRAM_API_KEY = os.environ.get("DEEPGRAM_API_KEY", "")
DEEPGRAM_URL = os.environ.get("DEEPGRAM_URL", "wss://api.deepgram.com/v2/listen")
GROQ_API_KEY = os.environ.get("GROQ_API_KEY", "")
GROQ_BASE_URL = os.environ.get("GROQ_BASE_URL", "https://api.groq.com")
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
CARTESIA_API_KEY = os.environ.get("CARTESIA_API_KEY", "")
CARTESIA_BASE_URL = os.environ.get("CARTESIA_BASE_URL", "https://api.cartesia.ai")
CARTESIA_WS_URL = os.environ.get("CARTESIA_WS_URL", "wss://api.cartesia.ai")
GOOGLE_APPLICATION_CREDENTIALS = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")
# host:port of a plaintext gRPC endpoint (a local fake or a proxy); empty = Google's TLS endpoint.
GOOGLE_TTS_INSECURE_ENDPOINT = os.environ.get("GOOGLE_TTS_INSECURE_ENDPOINT", "")
GOOGLE_TTS_ENDPOINT = os.environ.get("GOOGLE_TTS_ENDPOINT", "texttospeech.googleapis.com")
LLM_FIRST_TOKEN_TIMEOUT_S = float(os.environ.get("LLM_FIRST_TOKEN_TIMEOUT_S", "4"))

# --- SIP bridge ----------------------------------------------------------------------------------
SIP_HOST = os.environ.get("SIP_HOST", "127.0.0.1")
SIP_PORT = int(os.environ.get("SIP_PORT", "5060"))
SIP_RTP_PORTS = os.environ.get("SIP_RTP_PORTS", "10000-20000")
SIP_RTP_TIMEOUT_S = float(os.environ.get("SIP_RTP_TIMEOUT_S", "30"))
SIP_REALM = os.environ.get("SIP_REALM", "talky")
# Address SDP c=/o=, Contact and Via carry (an IP literal: the public/LAN address behind NAT).
# Empty = the address each request arrived on.
SIP_ADVERTISE = os.environ.get("SIP_ADVERTISE", "")
SIP_HOLD_TIMEOUT_S = float(os.environ.get("SIP_HOLD_TIMEOUT_S", "600"))  # held call with no media ends
SIP_EVENT_LOOP = os.environ.get("SIP_EVENT_LOOP", "auto")  # auto (uvloop if installed) | uvloop | asyncio
SIP_TRUSTED_IPS = os.environ.get("SIP_TRUSTED_IPS", "")  # comma list of IPs/CIDRs exempt from abuse limits
SIP_INVITE_RATE = float(os.environ.get("SIP_INVITE_RATE", "5"))  # new INVITEs per second per source IP
SIP_INVITE_BURST = int(os.environ.get("SIP_INVITE_BURST", "10"))
SIP_MAX_CALLS_PER_SOURCE = int(os.environ.get("SIP_MAX_CALLS_PER_SOURCE", "10"))
SIP_AUTH_FAIL_LIMIT = int(os.environ.get("SIP_AUTH_FAIL_LIMIT", "5"))  # wrong answers in 10 min -> lockout
SIP_AUTH_LOCKOUT_S = float(os.environ.get("SIP_AUTH_LOCKOUT_S", "600"))
# A bridge whose heartbeat is older than this is dead: the next bridge to start finalises its calls.
SIP_NODE_TIMEOUT_S = float(os.environ.get("SIP_NODE_TIMEOUT_S", "15"))

# --- Actions (issue 16): tools over HTTP, webhooks, transfer (campaigns/netguard.py) -------------
# Host names tool/webhook URLs may name ("*" = any host with public addresses; "*.example.com").
ACTIONS_URL_ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ACTIONS_URL_ALLOWED_HOSTS", "*").split(",")
                             if h.strip()]
# CIDRs reachable although private/loopback/link-local (empty: none, the metadata service included).
ACTIONS_ALLOWED_NETS = [n.strip() for n in os.environ.get("ACTIONS_ALLOWED_NETS", "").split(",") if n.strip()]
ACTIONS_MAX_RESPONSE_BYTES = int(os.environ.get("ACTIONS_MAX_RESPONSE_BYTES", str(64 * 1024)))
ACTIONS_TOOL_FILLER_MS = float(os.environ.get("ACTIONS_TOOL_FILLER_MS", "700"))
WEBHOOK_MAX_AGE_S = float(os.environ.get("WEBHOOK_MAX_AGE_S", str(24 * 3600)))  # retries stop after a day
WEBHOOK_WORKER = os.environ.get("WEBHOOK_WORKER", "1") == "1"  # the bridge delivers pending webhooks

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # talky.logsafe: clips/escapes logged values, redacts keys, tokens, passwords and HA1s
    "filters": {"safe": {"()": "talky.logsafe.RedactingFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["safe"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}

# --- Voice previews ------------------------------------------------------------------------------
PREVIEW_CACHE_MAX_BYTES = int(os.environ.get("PREVIEW_CACHE_MAX_BYTES", str(50 * 1024 * 1024)))
