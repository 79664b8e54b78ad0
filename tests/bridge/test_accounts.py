"""SIP accounts apply to a running bridge without a restart: within the process at once (model
signals), from other processes through the fingerprint poll. Refreshes are driven directly or
awaited through the event they set; nothing here sleeps."""

import asyncio
import contextlib
import hashlib
import logging

import pytest
from asgiref.sync import sync_to_async
from django.db.models.signals import post_delete, post_save

from telephony.bridge import accounts as live
from telephony.bridge.accounts import LiveAccounts
from telephony.models import SipAccount

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_thread_connections")]


@contextlib.contextmanager
def other_process():
    """Writes made here do not signal this process's bridges, as if the admin ran elsewhere."""
    post_save.disconnect(sender=SipAccount, dispatch_uid="talky-bridge-accounts-save")
    post_delete.disconnect(sender=SipAccount, dispatch_uid="talky-bridge-accounts-delete")
    try:
        yield
    finally:
        post_save.connect(live._account_changed, sender=SipAccount, weak=False,
                          dispatch_uid="talky-bridge-accounts-save")
        post_delete.connect(live._account_changed, sender=SipAccount, weak=False,
                            dispatch_uid="talky-bridge-accounts-delete")


def make_account(username: str = "alice", password: str = "pw", active: bool = True) -> SipAccount:
    acc = SipAccount(username=username, active=active)
    acc.set_password(password)
    acc.save()
    return acc


async def test_changes_from_another_process_apply_on_the_next_refresh(caplog):
    caplog.set_level(logging.INFO, logger="telephony.bridge")
    acc = LiveAccounts(loopback=True)
    assert not acc.open_mode()  # nothing loaded yet: closed, never open by accident
    await acc.refresh(force=True)
    assert acc.open_mode()
    with other_process():
        alice = await sync_to_async(make_account)()
    assert acc.open_mode()  # not yet refreshed: the cached state
    assert await acc.refresh() is True
    assert not acc.open_mode() and acc.ha1("alice") == hashlib.md5(b"alice:talky:pw").hexdigest()
    assert await acc.refresh() is False  # fingerprint unchanged: nothing reloaded

    with other_process():  # password changed
        alice.set_password("new")
        await sync_to_async(alice.save)()
    await acc.refresh()
    assert acc.ha1("alice") == hashlib.md5(b"alice:talky:new").hexdigest()

    with other_process():  # disabled: fails auth, and the bridge stays closed
        alice.active = False
        await sync_to_async(alice.save)()
    await acc.refresh()
    assert acc.ha1("alice") is None and not acc.open_mode()

    with other_process():  # deleted: no account at all, open again (loopback)
        await sync_to_async(alice.delete)()
    await acc.refresh()
    assert acc.open_mode()
    switches = [r.getMessage() for r in caplog.records if "switched" in r.getMessage()]
    assert len(switches) == 2  # open -> authenticated, authenticated -> open: once each
    assert "authenticated" in switches[0] and "open" in switches[1]


async def test_no_account_off_loopback_is_closed_not_open():
    acc = LiveAccounts(loopback=False)
    await acc.refresh(force=True)
    assert not acc.open_mode() and acc.ha1("anyone") is None
    assert "closed" in acc.mode


async def test_save_in_this_process_wakes_the_bridge_at_once():
    acc = LiveAccounts(loopback=True, poll_s=3600)  # the poll cannot be what picks it up
    await acc.start()
    try:
        assert acc.open_mode()
        acc.changed.clear()
        await sync_to_async(make_account)("bob")
        await asyncio.wait_for(acc.changed.wait(), 30)
        assert acc.ha1("bob") and not acc.open_mode()
        acc.changed.clear()
        await sync_to_async(lambda: SipAccount.objects.get(username="bob").delete())()
        await asyncio.wait_for(acc.changed.wait(), 30)
        assert acc.open_mode()
    finally:
        await acc.stop()


async def test_background_poll_picks_up_another_process_change():
    acc = LiveAccounts(loopback=True, poll_s=0.01)
    await acc.start()
    try:
        acc.changed.clear()
        with other_process():
            await sync_to_async(make_account)("carol")
        await asyncio.wait_for(acc.changed.wait(), 30)
        assert acc.ha1("carol") and not acc.open_mode()
    finally:
        await acc.stop()


async def test_admin_create_and_disable_reach_the_running_bridge():
    from django.contrib.auth import get_user_model
    from django.test import Client

    acc = LiveAccounts(loopback=True, poll_s=3600)
    await acc.start()

    def admin_post(url: str, data: dict) -> int:
        root = get_user_model().objects.filter(username="root").first() or \
            get_user_model().objects.create_superuser("root", password="pw-123456")
        c = Client()
        c.force_login(root)
        return c.post(url, data).status_code

    try:
        acc.changed.clear()
        assert await sync_to_async(admin_post)("/admin/telephony/sipaccount/add/",
                                               {"username": "dave", "realm": "talky", "active": "on",
                                                "password": "pw-dave"}) == 302
        await asyncio.wait_for(acc.changed.wait(), 30)  # the admin's transaction committed, then woke us
        assert acc.ha1("dave") and not acc.open_mode()
        pk = await sync_to_async(lambda: SipAccount.objects.get(username="dave").pk)()
        acc.changed.clear()
        assert await sync_to_async(admin_post)(f"/admin/telephony/sipaccount/{pk}/change/",
                                               {"username": "dave", "realm": "talky", "password": ""}) == 302
        await asyncio.wait_for(acc.changed.wait(), 30)
        assert acc.ha1("dave") is None and not acc.open_mode()  # disabled: refused, bridge still closed
    finally:
        await acc.stop()
