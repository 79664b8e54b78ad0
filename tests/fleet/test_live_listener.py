"""A live call's config listener (telephony.pipeline.live), fast, with a scripted channel layer:
- it outlives a channel-layer outage: with Redis restarted under a fleet, channels_redis's receive
  raises ConnectionError and a restarted Redis has forgotten the group; before the fix the listener
  died with the first error and no later change reached the call until its next turn;
- a change saved while the call was being set up (after its config read, before its listener
  joined the group) is applied when it joins.
The real thing, with Redis, daphne and two bridges behind Kamailio, is test_fleet_config.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aioptions.events import CONFIG_GROUP
from telephony.pipeline import live
from telephony.pipeline.live import LiveConfig


class FlakyLayer:
    """Redis going away under calls: the pending receive of the ``broken`` channels fails
    (ConnectionError, as channels_redis raises it), then ``down`` more operations fail (connection
    refused) before it is back, empty. Records every (group, channel) added while it was up."""

    def __init__(self, down: int, broken: int = 1) -> None:
        self.down = down
        self.made = 0
        self.broken = {f"specific.test!{n}" for n in range(1, broken + 1)}
        self.adds: list[tuple[str, str]] = []
        self.queues: dict[str, asyncio.Queue[dict]] = {}

    def _check(self) -> None:
        if self.down:
            self.down -= 1
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connect call failed")

    async def new_channel(self) -> str:
        self.made += 1
        return f"specific.test!{self.made}"

    async def group_add(self, group: str, channel: str) -> None:
        if any(c == channel for _, c in self.adds) and not self.broken:
            self._check()  # a second add: Redis may still be down
        self.adds.append((group, channel))

    async def group_discard(self, group: str, channel: str) -> None:
        pass

    def send(self, channel: str, message: dict) -> None:
        self.queues.setdefault(channel, asyncio.Queue()).put_nowait(message)

    async def receive(self, channel: str) -> dict:
        if channel in self.broken:
            self.broken.discard(channel)
            raise ConnectionError("Connection closed by server.")
        return await self.queues.setdefault(channel, asyncio.Queue()).get()


def config(voice: str = "v", version: int = 1) -> SimpleNamespace:
    turn = SimpleNamespace(eot_threshold=0.7, eager_eot_threshold=None, eot_timeout_ms=5000)
    return SimpleNamespace(turn=turn, llm_provider="groq", llm_model="m", tts_provider="cartesia", voice_id=voice,
                           version=version)


class Listener(LiveConfig):
    """LiveConfig with apply() replaced by a counter (what apply() does is tested elsewhere) and the
    database read by ``db`` (what the call's campaign resolves to now)."""

    def __init__(self, monkeypatch, db: SimpleNamespace | None = None) -> None:
        super().__init__(SimpleNamespace(cfg=config(), call=SimpleNamespace(call_id="c1", campaign_id=None)))
        self.applied = 0
        self.db = db or self.agent.cfg

        async def resolve(campaign_id):
            return None, self.db

        monkeypatch.setattr(live.store, "resolve_config", resolve)

    async def apply(self, cfg=None) -> None:
        self.applied += 1
        self.agent.cfg = cfg or self.db


async def test_the_listener_rejoins_after_the_layer_fails_and_still_gets_changes(monkeypatch, caplog):
    """Also the log line each change leaves per call (the fleet test reads it from both bridges)."""
    layer = FlakyLayer(down=3)
    monkeypatch.setattr(live, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(live, "RETRY_MIN_S", 0.001)
    monkeypatch.setattr(live, "RETRY_MAX_S", 0.004)
    listener = Listener(monkeypatch)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.changed.wait(), 5)  # the catch-up re-read once the layer is back
        assert listener.applied == 1 and listener.events == 0
        assert layer.adds == [(CONFIG_GROUP, "specific.test!1")] * 2 and layer.down == 0  # joined again once back
        listener.changed.clear()
        layer.send("specific.test!1", {"type": "config.updated", "payload": {"config": {"version": 7}}})
        await asyncio.wait_for(listener.changed.wait(), 5)
        assert listener.events == 1 and listener.applied == 2 and not task.done()
        listener.changed.clear()  # a campaign's change (campaigns.services) travels the same group
        layer.send("specific.test!1", {"type": "config.updated", "payload": {"target": "campaign:3",
                                                                          "changed": ["voice"]}})
        await asyncio.wait_for(listener.changed.wait(), 5)
        assert listener.events == 2 and listener.applied == 3
    finally:
        task.cancel()
    warnings = [r for r in caplog.records if "channel layer failed" in r.getMessage()]
    assert len(warnings) == 1, warnings  # one line per outage, not one per retry
    lines = [r.getMessage() for r in caplog.records]
    assert any("call c1: config v7 received live: llm groq/m, voice cartesia/v" in m for m in lines), lines
    assert any("call c1: campaign:3 change received live" in m for m in lines), lines


async def test_a_change_saved_while_the_call_was_set_up_is_applied_when_it_joins(monkeypatch, caplog):
    """The call read its config, then spent a while connecting (recogniser, greeting) before its
    listener joined the group: a save in that gap had no listener in this call. Seen in the fleet
    test on a bridge still warming up; before, the call kept the old config until its next turn."""
    layer = FlakyLayer(down=0, broken=0)
    monkeypatch.setattr(live, "get_channel_layer", lambda: layer)
    listener = Listener(monkeypatch, db=config(voice="new", version=2))  # saved after the call's read
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.changed.wait(), 5)
        assert listener.applied == 1 and listener.agent.cfg.voice_id == "new" and len(layer.adds) == 1
    finally:
        task.cancel()
    assert any("call c1: config v2 changed during call set-up, applied" in r.getMessage() for r in caplog.records)


async def test_nothing_changed_at_join_costs_one_read_and_no_apply(monkeypatch):
    layer = FlakyLayer(down=0, broken=0)
    monkeypatch.setattr(live, "get_channel_layer", lambda: layer)
    listener = Listener(monkeypatch)
    task = asyncio.create_task(listener.run())
    try:
        layer.send("specific.test!1", {"type": "config.updated", "payload": {"config": {"version": 1}}})
        await asyncio.wait_for(listener.changed.wait(), 5)  # set by the event, not by the join check
        assert listener.events == 1 and listener.applied == 1
    finally:
        task.cancel()


async def test_a_call_that_missed_the_outage_is_put_back_in_the_group_by_one_that_saw_it(monkeypatch, caplog):
    """channels_redis runs one BRPOP per process for all its calls: only the call holding it sees
    Redis go; another can reach the restarted, empty Redis without an error and wait there, out
    of the group, forever. The call that saw the outage rejoins every call of the process."""
    layer = FlakyLayer(down=2)  # only the first call's receive fails
    monkeypatch.setattr(live, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(live, "RETRY_MIN_S", 0.001)
    monkeypatch.setattr(live, "RETRY_MAX_S", 0.004)
    saw, missed = Listener(monkeypatch), Listener(monkeypatch)
    missed.agent.call.call_id = "c2"
    tasks = [asyncio.create_task(saw.run()), asyncio.create_task(missed.run())]  # saw runs first: channel !1
    try:
        await asyncio.wait_for(asyncio.gather(saw.changed.wait(), missed.changed.wait()), 5)
        assert layer.adds.count((CONFIG_GROUP, "specific.test!2")) == 2, layer.adds  # joined, then put back
        assert missed.applied == 1  # and it re-read, for a change saved while Redis was away
        missed.changed.clear()
        layer.send("specific.test!2", {"type": "config.updated", "payload": {"config": {"version": 3}}})
        await asyncio.wait_for(missed.changed.wait(), 5)
        assert missed.events == 1
    finally:
        for task in tasks:
            task.cancel()
    assert any("call c2: channel layer back; config re-read" in r.getMessage() for r in caplog.records)
    assert not any("call c2: channel layer failed" in r.getMessage() for r in caplog.records)
