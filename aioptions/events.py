"""Broadcasting config changes to every open page and every live call (Channels group)."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

CONFIG_GROUP = "ai_options"


def broadcast_config(payload: dict) -> None:
    """Send ``config_updated`` to the group. A broken channel layer must not undo a saved change,
    so failures are logged, not raised (the DB is the source of truth; calls re-read it per turn).

    Callable from sync code only (services run in a thread when called from async code).
    """
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(CONFIG_GROUP, {"type": "config.updated", "payload": payload})
    except Exception:  # noqa: BLE001 - the change is already committed
        log.exception("could not broadcast config change")
