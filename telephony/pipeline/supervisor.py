"""STT supervision for one call: there is never a moment when the caller can talk and nothing listens.

The cloud session recovers what its protocol allows by itself (Flux: reconnect and replay, see
flux.py). When it gives up (``events()`` raises STTError) the supervisor opens the offline
recogniser, feeds it the turn in progress the cloud session still held plus every frame that arrived
while switching, and carries on. Only when the offline recogniser cannot open either does the call
end, with a spoken goodbye. Each fallback is logged once and noted on the next Turn row.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aioptions.providers import factory
from aioptions.providers.base import AudioFormat, STTError, STTSession, TurnEvent

log = logging.getLogger("telephony.pipeline")


class STTSupervisor:
    def __init__(self, cfg, fmt: AudioFormat, call_id: str, note: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.fmt = fmt
        self.call_id = call_id
        self.note = note
        self.session: STTSession | None = None
        self.provider = ""
        self._switching: list[bytes] | None = None  # frames held while the fallback opens

    async def open(self) -> STTSession:
        """The configured recogniser, else the offline one (raises STTError if neither opens)."""
        turn = self.cfg.turn
        try:
            stt = factory.build_stt(self.cfg)
            self.session = await stt.open(self.fmt, eot_threshold=turn.eot_threshold,
                                          eager_eot_threshold=turn.eager_eot_threshold,
                                          eot_timeout_ms=turn.eot_timeout_ms,
                                          **_keyterms(turn))
            self.provider = stt.name
        except STTError as exc:
            if self.cfg.stt_provider == "offline":
                raise
            self.note(f"stt {self.cfg.stt_provider}: {exc.kind}; offline recogniser")
            log.warning("call %s: %s unavailable (%s); using the offline recogniser", self.call_id,
                        self.cfg.stt_provider, exc)
            await self._open_offline(b"")
        return self.session

    async def _open_offline(self, backlog: bytes) -> None:
        self.session = await factory.build_offline_stt().open(self.fmt)
        self.provider = "offline"
        if backlog:
            await self.session.send(backlog)

    async def send(self, frame: bytes) -> None:
        if self._switching is not None:
            self._switching.append(frame)
        elif self.session is not None:
            await self.session.send(frame)

    def take_faults(self) -> list[str]:
        return self.session.take_faults() if self.session is not None else []

    async def run(self, handle: Callable[[TurnEvent], Awaitable[None]],
                  give_up: Callable[[str], Awaitable[None]]) -> None:
        """Drive ``handle`` with turn events for the whole call, swapping recognisers on failure."""
        while self.session is not None:
            try:
                async for ev in self.session.events():
                    await handle(ev)
                return  # closed at hang-up
            except STTError as exc:
                failed = self.session
                if self.provider == "offline":
                    log.error("call %s: offline recogniser failed: %s", self.call_id, exc)
                    await give_up("stt offline failed")
                    return
                self.note(f"stt {self.provider}: {exc.kind}: {exc}; offline recogniser")
                log.error("call %s: %s failed (%s); switching to the offline recogniser", self.call_id,
                          self.provider, exc)
                self._switching = []
                try:
                    await self._open_offline(failed.unsent_audio())
                except Exception as exc2:  # noqa: BLE001 - nothing listens: end the call politely
                    log.error("call %s: offline recogniser unavailable: %s", self.call_id, exc2)
                    self._switching = None
                    await give_up("stt unavailable")
                    return
                held, self._switching = self._switching, None
                for frame in held:
                    await self.session.send(frame)
                try:
                    await failed.close()
                except Exception:  # noqa: BLE001
                    pass

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def _keyterms(turn) -> dict:
    """``keyterms`` when the config carries them (Flux keyterm prompting)."""
    keyterms = getattr(turn, "keyterms", None)
    return {"keyterms": list(keyterms)} if keyterms else {}
