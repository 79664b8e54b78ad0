"""A live call's config listener outlives a channel-layer outage (fast, a scripted layer): with
Redis restarted under a fleet, channels_redis's receive raises ConnectionError and a restarted
Redis has forgotten the group. Before the fix the listener task died with the first error, so no
later change reached the call until its next turn. The real Redis restart is in
test_fleet_config.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aioptions.events import CONFIG_GROUP
from telephony.pipeline import live
from telephony.pipeline.live import LiveConfig


class FlakyLayer:
    """Redis going away under a call: the pending receive fails (ConnectionError, as channels_redis
    raises it), then ``down`` more operations fail (connection refused) before it is back, empty.
    Records every group_add that succeeded: a restarted Redis needs the call's membership again."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.broken = True  # the first receive finds the connection closed
        self.adds: list[str] = []
        self.queue: asyncio.Queue[dict] = asyncio.Queue()

    def _check(self) -> None:
        if self.down:
            self.down -= 1
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connect call failed")

    async def new_channel(self) -> str:
        return "specific.test!1"

    async def group_add(self, group: str, channel: str) -> None:
        if len(self.adds) and not self.broken:
            self._check()
        self.adds.append(group)

    async def group_discard(self, group: str, channel: str) -> None:
        pass

    async def receive(self, channel: str) -> dict:
        if self.broken:
            self.broken = False
            raise ConnectionError("Connection closed by server.")
        return await self.queue.get()


class Listener(LiveConfig):
    """LiveConfig with the database read replaced by a counter (what apply() does is tested elsewhere)."""

    def __init__(self) -> None:
        turn = SimpleNamespace(eot_threshold=0.7, eager_eot_threshold=None, eot_timeout_ms=5000)
        cfg = SimpleNamespace(turn=turn, llm_provider="groq", llm_model="m", tts_provider="cartesia", voice_id="v")
        super().__init__(SimpleNamespace(cfg=cfg, call=SimpleNamespace(call_id="c1")))
        self.applied = 0

    async def apply(self) -> None:
        self.applied += 1


async def test_the_listener_rejoins_after_the_layer_fails_and_still_gets_changes(monkeypatch, caplog):
    """Also the log line each change leaves per call (the fleet test reads it from both bridges)."""
    layer = FlakyLayer(down=3)
    monkeypatch.setattr(live, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(live, "RETRY_MIN_S", 0.001)
    monkeypatch.setattr(live, "RETRY_MAX_S", 0.004)
    listener = Listener()
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.changed.wait(), 5)  # the catch-up re-read once the layer is back
        assert listener.applied == 1 and listener.events == 0
        assert layer.adds == [CONFIG_GROUP] * 2 and layer.down == 0  # joined again once Redis was back
        listener.changed.clear()
        layer.queue.put_nowait({"type": "config.updated", "payload": {"config": {"version": 7}}})
        await asyncio.wait_for(listener.changed.wait(), 5)
        assert listener.events == 1 and listener.applied == 2 and not task.done()
        listener.changed.clear()  # a campaign's change (campaigns.services) travels the same group
        layer.queue.put_nowait({"type": "config.updated", "payload": {"target": "campaign:3", "changed": ["voice"]}})
        await asyncio.wait_for(listener.changed.wait(), 5)
        assert listener.events == 2 and listener.applied == 3
    finally:
        task.cancel()
    warnings = [r for r in caplog.records if "channel layer failed" in r.getMessage()]
    assert len(warnings) == 1, warnings  # one line per outage, not one per retry
    lines = [r.getMessage() for r in caplog.records]
    assert any("call c1: config v7 received live: llm groq/m, voice cartesia/v" in m for m in lines), lines
    assert any("call c1: campaign:3 change received live" in m for m in lines), lines
