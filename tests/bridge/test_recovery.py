"""Start-up recovery: calls of dead bridges are finalised ("bridge lost", recording linked and
repaired); calls of live bridges are left alone."""

import socket
import subprocess
import wave
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from telephony import selectors, services
from telephony.media.recording import wav_header
from telephony.models import BridgeNode, Call

pytestmark = pytest.mark.django_db


def node(name: str, *, age_s: float, hostname: str = "elsewhere", pid: int = 1, stopped: bool = False) -> BridgeNode:
    beat = timezone.now() - timedelta(seconds=age_s)
    return BridgeNode.objects.create(name=name, hostname=hostname, host="10.0.0.1", sip_port=5060, pid=pid,
                                     heartbeat_at=beat, stopped_at=beat if stopped else None)


def open_call(owner: BridgeNode | None, **kw) -> Call:
    return Call.objects.create(sip_call_id=f"c-{Call.objects.count()}", bridge_node=owner, **kw)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "recordings").mkdir()
    return tmp_path


def broken_wav(path, frames: int) -> None:
    """What the old recorder left after SIGKILL: a header saying 0 frames, then the audio."""
    path.write_bytes(wav_header(0) + np.ones(frames * 2, dtype="<i2").tobytes())


def test_dead_nodes_calls_are_finalised_and_live_ones_left(media):
    live, dead = node("live", age_s=1), node("dead", age_s=60)
    mine = open_call(live)
    lost = open_call(dead, answered_at=timezone.now() - timedelta(seconds=90))
    Call.objects.filter(pk=lost.pk).update(started_at=timezone.now() - timedelta(seconds=100))
    stray = open_call(None)  # a row no node owns (written before nodes existed)
    done = open_call(dead, ended_at=timezone.now(), end_reason="bye")
    broken_wav(media / "recordings" / f"call-{lost.pk}-abc.wav", 4000)

    assert services.recover_orphaned_calls(timeout_s=15) == 2

    mine.refresh_from_db(), lost.refresh_from_db(), stray.refresh_from_db(), done.refresh_from_db()
    assert mine.ended_at is None and mine.end_reason == ""  # another live bridge's call: untouched
    assert lost.end_reason == stray.end_reason == "bridge_lost"
    assert lost.get_end_reason_display() == "bridge lost"
    assert lost.ended_at == dead.heartbeat_at  # cut when the dead bridge last proved it was alive
    assert done.end_reason == "bye"
    assert lost.recording.name == f"recordings/call-{lost.pk}-abc.wav"
    with wave.open(str(media / lost.recording.name), "rb") as w:
        assert w.getnframes() == 4000  # header repaired
    dead.refresh_from_db()
    assert dead.stopped_at is not None  # judged dead once, not again at every start
    assert list(selectors.live_nodes(15)) == [live]


def test_recording_linked_at_answer_is_found_and_repaired(media):
    dead = node("dead", age_s=60)
    call = open_call(dead)
    path = media / "recordings" / "custom-name.wav"
    broken_wav(path, 800)
    services.mark_answered(call.pk, recording=path)
    call.refresh_from_db()
    assert call.recording.name == "recordings/custom-name.wav" and call.answered_at  # playable mid-call
    assert services.recover_orphaned_calls(timeout_s=15) == 1
    with wave.open(str(path), "rb") as w:
        assert w.getnframes() == 800


def test_own_node_is_never_recovered_and_fresh_nodes_of_other_hosts_wait_for_the_timeout(media):
    me, other = node("me", age_s=600), node("other", age_s=5)
    mine, theirs = open_call(me), open_call(other)
    assert services.recover_orphaned_calls(timeout_s=15, exclude_node=me.pk) == 0
    assert Call.objects.filter(pk__in=[mine.pk, theirs.pk], ended_at__isnull=True).count() == 2


def test_same_host_node_whose_process_is_gone_is_dead_at_once(media):
    """systemd restarts a killed bridge within a second: its calls must not wait for the timeout."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    host = socket.gethostname()
    gone = node("gone", age_s=1, hostname=host, pid=proc.pid)
    alive = node("alive", age_s=1, hostname=host, pid=1)  # pid 1 always exists
    lost, kept = open_call(gone), open_call(alive)
    assert services.recover_orphaned_calls(timeout_s=15, hostname=host) == 1
    assert Call.objects.get(pk=lost.pk).end_reason == "bridge_lost"
    assert Call.objects.get(pk=kept.pk).ended_at is None


def test_reap_finalises_calls_of_a_node_that_died_while_we_run(media):
    me, peer = node("me", age_s=0), node("peer", age_s=0)
    call = open_call(peer)
    assert services.reap_dead_nodes(timeout_s=15, exclude_node=me.pk) == 0
    later = timezone.now() + timedelta(seconds=30)  # the peer stopped beating 30 s ago
    services.heartbeat_node(me.pk)
    assert services.reap_dead_nodes(timeout_s=15, exclude_node=me.pk, now=later) == 1
    assert Call.objects.get(pk=call.pk).end_reason == "bridge_lost"
    assert not services.heartbeat_node(peer.pk)  # a node judged dead learns it at its next beat


def test_stop_and_prune(media):
    a = node("a", age_s=0)
    services.stop_node(a.pk)
    a.refresh_from_db()
    assert a.stopped_at is not None and not selectors.live_nodes(15).exists()
    old = node("old", age_s=3 * 86400, stopped=True)
    busy = node("busy", age_s=3 * 86400)
    Call.objects.create(sip_call_id="done", bridge_node=old, ended_at=timezone.now(), end_reason="bye")
    open_call(busy)
    assert services.prune_dead_nodes() == 1
    assert set(BridgeNode.objects.values_list("name", flat=True)) == {"a", "busy"}
    assert Call.objects.get(sip_call_id="done").bridge_node is None  # history kept
