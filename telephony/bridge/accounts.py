"""SIP accounts as a running bridge sees them, kept current while it runs.

Digest auth looks HA1 up on the packet path, so it reads an in-memory dict, never the database.
That dict is refreshed off the event loop:
- within the process, at once: a save/delete of a SipAccount (admin, API, shell) wakes every
  bridge of this process after the transaction commits;
- across processes (the admin in the web server, the bridge in ``run_sip_bridge``): a poll every
  ``poll_s`` compares a one-query fingerprint (count, latest ``updated_at``, highest id) and
  reloads only when it moved; a full reload every ``full_reload_s`` also catches bulk
  ``QuerySet.update()`` writes that bypass ``updated_at``.
So a change applies within ``poll_s`` (2 s) everywhere. Until the first load the bridge is closed.

Open mode (any user/password accepted) only while no account exists at all — a disabled account
still closes the bridge — and only on a loopback bind (DESIGN.md, security model).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from telephony import selectors
from telephony.models import SipAccount

log = logging.getLogger("telephony.bridge")

_live: weakref.WeakSet[LiveAccounts] = weakref.WeakSet()


class LiveAccounts:
    def __init__(self, *, loopback: bool, poll_s: float = 2.0, full_reload_s: float = 60.0) -> None:
        self.loopback = loopback
        self.poll_s = poll_s
        self.full_reload_s = full_reload_s
        self._ha1: dict[str, str] = {}
        self._count: int | None = None  # None = not loaded yet: closed
        self._version: tuple | None = None
        self._loaded_at = 0.0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._failing = False
        self.changed = asyncio.Event()  # set each time a refresh applied a change (tests wait on it)

    # --- read on the packet path (no I/O) ----------------------------------------------------
    def ha1(self, user: str) -> str | None:
        return self._ha1.get(user)

    def open_mode(self) -> bool:
        return self._count == 0 and self.loopback

    @property
    def mode(self) -> str:
        if self._count is None:
            return "not loaded"
        if self.open_mode():
            return "open (no SIP accounts: any user/password)"
        if self._count == 0:
            return "closed (no SIP accounts and not on loopback: create one in the admin)"
        return f"authenticated ({len(self._ha1)} active of {self._count} account(s))"

    # --- refresh (off the loop) ---------------------------------------------------------------
    async def refresh(self, *, force: bool = False) -> bool:
        """Reload if the fingerprint moved (or ``force``). Returns True if something changed."""
        version = await sync_to_async(selectors.sip_accounts_version)()
        if not force and version == self._version:
            return False
        count, ha1 = await sync_to_async(selectors.sip_accounts_snapshot)()
        self._loaded_at = time.monotonic()
        self._version = version
        if count == self._count and ha1 == self._ha1:
            return False
        was_open, was_loaded = self.open_mode(), self._count is not None
        self._ha1, self._count = ha1, count
        if not was_loaded:
            log.info("SIP auth: %s", self.mode)
        elif was_open != self.open_mode():  # log the switch once, not every refresh
            log.warning("SIP auth switched to %s", self.mode)
        else:
            log.info("SIP accounts reloaded: %s", self.mode)
        self.changed.set()
        return True

    def wake(self) -> None:
        """Ask for a refresh now. Safe from any thread (signal handlers run in the saving thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.refresh(force=time.monotonic() - self._loaded_at > self.full_reload_s)
                if self._failing:
                    log.info("SIP accounts readable again")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a database hiccup must not stop the refreshes
                if not self._failing:  # once per outage, not every 2 s
                    log.exception("cannot read SIP accounts; keeping the last known set")
                self._failing = True

    async def start(self) -> None:
        """First load (before the bridge listens), then the background refresh."""
        await self.refresh(force=True)
        self._loop = asyncio.get_running_loop()
        _live.add(self)
        self._task = self._loop.create_task(self._run())

    async def stop(self) -> None:
        _live.discard(self)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


def _wake_all() -> None:
    for accounts in list(_live):
        accounts.wake()


def _account_changed(sender, **kwargs) -> None:
    # after commit: a refresh started inside the admin's transaction would read the old rows
    transaction.on_commit(_wake_all)


post_save.connect(_account_changed, sender=SipAccount, weak=False, dispatch_uid="talky-bridge-accounts-save")
post_delete.connect(_account_changed, sender=SipAccount, weak=False, dispatch_uid="talky-bridge-accounts-delete")
