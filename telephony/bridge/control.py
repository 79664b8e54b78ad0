"""A loopback control channel into a running ``run_sip_bridge``: "place this call" from
``manage.py dial`` and ``POST /api/v1/calls`` in other processes.

Why a channel and not a database row: a registered extension lives only in the bridge's memory
(its registrar), and the command prints every SIP step as it happens — both need the bridge
itself. The server listens on 127.0.0.1 (port chosen by the kernel) and publishes the port and a
random token in ``VAR_DIR/sip_control.json`` (mode 600): only a process of the same user on the
same machine can read it, and a request without the token is dropped. One JSON line in, JSON
lines out: ``{"step": ...}`` per SIP step, ``{"accepted": ...}`` once routing passed, then
``{"result": ...}`` or ``{"refused": ...}``. The call runs in its own task, so a client that
goes away (``detach``) does not end the call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from campaigns.outbound import Refused

log = logging.getLogger("telephony.bridge")
MAX_LINE = 4096


def control_path() -> Path:
    return Path(settings.VAR_DIR) / "sip_control.json"


def _write_private(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    tmp.replace(path)


def _unlink_if_ours(path: Path, token: str) -> None:
    """Remove the control file only if it is still this server's: two bridges sharing a VAR_DIR
    (deploy/local-cluster.sh) write the same file, and the one stopping first must not take the
    other's away (``manage.py dial`` would then find no bridge while one runs)."""
    try:
        if json.loads(path.read_text()).get("token") != token:
            return
    except (OSError, ValueError, AttributeError):
        return
    path.unlink(missing_ok=True)


class ControlServer:
    def __init__(self, outbound) -> None:
        self.outbound = outbound
        self.token = secrets.token_urlsafe(24)
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self._calls: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0, limit=MAX_LINE)
        self.port = self.server.sockets[0].getsockname()[1]
        await asyncio.to_thread(_write_private, control_path(), {"port": self.port, "token": self.token,
                                                                 "pid": os.getpid()})
        log.info("control channel on 127.0.0.1:%d (manage.py dial)", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        await asyncio.to_thread(_unlink_if_ours, control_path(), self.token)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(obj: dict) -> None:
            if not writer.is_closing():
                writer.write(json.dumps(obj, default=str).encode() + b"\n")

        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            req = json.loads(line)
            if not isinstance(req, dict) or not hmac.compare_digest(str(req.get("token", "")), self.token):
                return
            if req.get("action") != "dial":
                send({"refused": "unknown action"})
                return
            campaign = req.get("campaign")
            ring = req.get("ring_timeout_s") or 30
            task = asyncio.create_task(self.outbound.place(
                str(req.get("to", "")), int(campaign) if campaign else None, ring_timeout_s=float(ring),
                on_step=lambda s: send({"step": s}),
                on_accepted=lambda plan: send({"accepted": {"route": plan.kind, "dest": plan.dest}})))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
            try:
                result = await asyncio.shield(task)
                send({"result": dataclasses.asdict(result)})
            except Refused as exc:
                send({"refused": str(exc)})
            await writer.drain()
        except (ValueError, TypeError, TimeoutError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except Exception:  # noqa: BLE001 - one bad client must not hurt the bridge
            log.exception("control channel request failed")
        finally:
            writer.close()


def control_info() -> dict | None:
    """The running bridge's control port and token, or None when no live bridge published one."""
    try:
        data = json.loads(control_path().read_text())
        os.kill(int(data["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return data


async def dial_via_bridge(to: str, campaign: int | None, *, ring_timeout_s: float = 30.0,
                          on_step: Callable[[str], None] | None = None, detach: bool = False) -> dict:
    """Ask the running bridge to place a call. Returns {"result": ...}, {"refused": ...} or, with
    ``detach``, {"accepted": ...} as soon as the call is on its way. ConnectionError: no bridge."""
    info = control_info()
    if info is None:
        raise ConnectionError("no running run_sip_bridge (its control file is missing or stale)")
    reader, writer = await asyncio.open_connection("127.0.0.1", int(info["port"]), limit=1 << 16)
    try:
        writer.write(json.dumps({"token": info["token"], "action": "dial", "to": to, "campaign": campaign,
                                 "ring_timeout_s": ring_timeout_s}).encode() + b"\n")
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("the bridge closed the control channel")
            msg = json.loads(line)
            if "step" in msg:
                if on_step:
                    on_step(msg["step"])
                continue
            if "accepted" in msg and not detach:
                continue
            return msg
    finally:
        writer.close()
