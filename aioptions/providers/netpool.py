"""Process-wide network resources for the provider clients: one TLS context, one HTTP pool per provider.

Why: building a verified ``ssl.SSLContext`` parses the system CA bundle (~20 ms of CPU), and every
SDK client (``AsyncGroq``, ``AsyncCartesia``) and every ``websockets.connect("wss://...")`` builds its
own unless given one. Done per call on the event loop, that stalled the media clock for every caller
in the process (issue 18: ~30 % of profile samples during call arrival). Here:

- ``ssl_context()`` is the one verified context, built once (``warm_up()`` builds it in a worker
  thread at start). It is only ever built for https/wss endpoints: ``ssl_for("ws://...")`` is None.
- ``http_client(provider, base_url)`` is one ``httpx.AsyncClient`` per provider and origin per event
  loop, with keep-alive connections shared by every call (an LLM request on call 57 reuses the TLS
  session call 3 opened). Plain-http origins (local fakes, proxies) get a context with no trust
  anchors, which is cheap to build and fails closed if anything ever redirects them to TLS.
- Pools belong to the loop that made them (anyio connections cannot cross loops); ``aclose_pools()``
  closes the running loop's pools at shutdown. Per-call ``aclose()`` must never close a pooled client:
  ``is_pooled()`` tells the SDK wrappers which clients are not theirs.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import weakref
from urllib.parse import urlsplit

import httpx

_SECURE = frozenset({"https", "wss"})
_lock = threading.Lock()
_verified: ssl.SSLContext | None = None
_closed_ctx: ssl.SSLContext | None = None
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)
_pooled: weakref.WeakSet[httpx.AsyncClient] = weakref.WeakSet()
contexts_built = 0  # verified contexts built in this process (tests assert it stays at most 1)

# Enough keep-alive connections for every concurrent call's LLM stream (HTTP/1.1: one per stream).
POOL_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=60.0)


def is_secure(url: str) -> bool:
    return urlsplit(url).scheme.lower() in _SECURE


def ssl_context() -> ssl.SSLContext:
    """The process's verified TLS context (system CAs, hostname checks), built on first use only."""
    global _verified, contexts_built
    ctx = _verified
    if ctx is None:
        with _lock:
            if _verified is None:
                _verified = ssl.create_default_context()
                contexts_built += 1
            ctx = _verified
    return ctx


def ssl_for(url: str) -> ssl.SSLContext | None:
    """What to pass as ``ssl=`` to ``websockets.connect(url)``: the shared context for wss, else None."""
    return ssl_context() if is_secure(url) else None


def no_trust_context() -> ssl.SSLContext:
    """A client context that trusts nothing: for http-only pools, where TLS is never expected."""
    global _closed_ctx
    if _closed_ctx is None:
        _closed_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, no CAs: always fails
    return _closed_ctx


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def http_client(provider: str, base_url: str, *, timeout: float = 30.0) -> httpx.AsyncClient:
    """The running loop's shared HTTP client for ``provider`` at ``base_url``'s origin (made once).

    The SDKs pass their own per-request timeouts, so ``timeout`` only covers direct use."""
    loop = asyncio.get_running_loop()
    pools = _pools.setdefault(loop, {})
    key = (provider, _origin(base_url))
    client = pools.get(key)
    if client is None or client.is_closed:
        verify = ssl_context() if is_secure(base_url) else no_trust_context()
        client = httpx.AsyncClient(verify=verify, limits=POOL_LIMITS, timeout=timeout, follow_redirects=True)
        pools[key] = client
        _pooled.add(client)
    return client


_warmed: weakref.WeakKeyDictionary[httpx.AsyncClient, float] = weakref.WeakKeyDictionary()
WARM_TTL_S = 30.0  # well inside POOL_LIMITS' 60 s keep-alive expiry


def claim_warm_up(client: object, now: float, ttl: float = WARM_TTL_S) -> bool:
    """True if the caller should pre-warm this pooled client now; marks it warmed (or in flight).

    Why: every pipeline call used to pre-warm its LLM with a GET /models through the SDK at set-up,
    ~3-13 ms of event-loop CPU per call (SDK request building, httpx, the log line); 100 calls
    arriving together queued ~1.3 s of it in front of every caller's 20 ms tick (issue 18 profile).
    The pool is shared, so one warm-up per pool per ``ttl`` keeps a connection ready; a call after
    that reuses the pool's keep-alive connections. Clients that are not pooled always warm."""
    if not is_pooled(client):
        return True
    last = _warmed.get(client)
    if last is not None and now - last < ttl:
        return False
    _warmed[client] = now
    return True


def forget_warm_up(client: object) -> None:
    """A warm-up failed: let the next call try again."""
    if is_pooled(client):
        _warmed.pop(client, None)


def is_pooled(client: object) -> bool:
    """True for a client from ``http_client()``: shared by calls, closed only by ``aclose_pools()``."""
    try:
        return client in _pooled
    except TypeError:  # not weak-referenceable: not ours
        return False


async def warm_up(urls: list[str] | tuple[str, ...] = ()) -> None:
    """At process start: build the TLS context off the loop if any endpoint needs it (never for
    http/ws-only set-ups), so no call pays for it on the event loop."""
    if any(is_secure(u) for u in urls if u):
        await asyncio.to_thread(ssl_context)


async def aclose_pools() -> None:
    """Close the running loop's pooled clients (bridge shutdown)."""
    pools = _pools.pop(asyncio.get_running_loop(), {})
    for client in pools.values():
        _pooled.discard(client)
        try:
            await client.aclose()
        except Exception:  # noqa: BLE001 - shutting down
            pass


def pool_stats() -> dict:
    """Pools of the running loop, for status pages: ``{"groq http://127.0.0.1:9": open, ...}``."""
    try:
        pools = _pools.get(asyncio.get_running_loop(), {})
    except RuntimeError:
        return {}
    return {f"{p} {o}": not c.is_closed for (p, o), c in pools.items()}
