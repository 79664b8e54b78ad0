"""Two bridges on one machine share VAR_DIR (deploy/local-cluster.sh): the control file that
`manage.py dial` reads belongs to the last one started, and the other one stopping (drained,
restarted) must not delete it, or dial would report "no running run_sip_bridge" while one runs."""

from __future__ import annotations

from telephony.bridge.control import ControlServer, control_info, control_path


async def test_the_bridge_stopping_first_leaves_the_other_bridges_control_file(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    a, b = ControlServer(outbound=None), ControlServer(outbound=None)
    await a.start()
    await b.start()  # same VAR_DIR: b's file replaces a's
    try:
        await a.stop()
        info = control_info()
        assert info is not None and (info["port"], info["token"]) == (b.port, b.token)
    finally:
        await b.stop()
    assert control_info() is None and not control_path().exists()  # the last one cleans up its own
