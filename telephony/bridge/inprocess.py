"""The SIP bridge started inside the web process (POST /api/v1/sip/start): one BridgeRunner on the
ASGI server's event loop. A separate ``run_sip_bridge`` process is the usual deployment."""

from __future__ import annotations

import asyncio

from .runner import BridgeRunner, bridge_process_status

_runner: BridgeRunner | None = None
_lock = asyncio.Lock()


class BridgeError(RuntimeError):
    pass


async def start(**kwargs) -> dict:
    global _runner
    async with _lock:
        if _runner is not None:
            raise BridgeError(f"already running on {_runner.gateway.host}:{_runner.gateway.port}")
        try:
            runner = BridgeRunner(**kwargs)
        except ValueError as exc:  # e.g. a bad SIP_ADVERTISE / SIP_TRUSTED_IPS setting
            raise BridgeError(str(exc)) from None
        try:
            await runner.start()
        except OSError as exc:
            raise BridgeError(f"cannot bind {kwargs.get('host')}:{kwargs.get('port')}: {exc.strerror}") from None
        _runner = runner
        return runner.status()


async def stop() -> dict:
    global _runner
    async with _lock:
        if _runner is None:
            raise BridgeError("not running")
        runner, _runner = _runner, None
        await runner.stop()
        return {"status": "stopped"}


def status() -> dict:
    if _runner is not None:
        return {**_runner.status(), "where": "web process"}
    return bridge_process_status() or {"status": "stopped", "calls": 0}
