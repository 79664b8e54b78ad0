"""run_sip_bridge: flag validation, and a real bridge killed with SIGKILL mid-call whose call the
next bridge finalises as "bridge lost" with a playable recording."""

import json
import shlex
import wave
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.sip.peers import PY, STOP_BRIDGE, bridge_env, bridge_script, manage_shell, prepare_db, require, run_in_netns


@pytest.mark.parametrize("args,fragment", [
    (["--advertise", "pbx.example.com"], "must be an IP address"),
    (["--advertise", "0.0.0.0"], "phones can reach"),
    (["--trusted", "10.0.0.0/8,10.1.2.3/40"], "--trusted"),
    (["--hold-timeout", "0"], "--hold-timeout"),
])
@pytest.mark.django_db
def test_bad_flags_are_a_clear_command_error(args, fragment):
    with pytest.raises(CommandError, match=fragment):
        call_command("run_sip_bridge", "--agent", "echo", *args)


@pytest.mark.django_db
def test_an_unmigrated_database_is_a_clear_command_error(monkeypatch):
    from django.db.migrations.executor import MigrationExecutor

    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [("telephony", "0007")])
    with pytest.raises(CommandError, match="run `python manage.py migrate` first"):
        call_command("run_sip_bridge", "--agent", "echo")


def test_the_event_loop_choice(monkeypatch):
    import asyncio
    import sys

    from telephony.management.commands.run_sip_bridge import loop_factory

    assert loop_factory("asyncio") == (asyncio.new_event_loop, "asyncio")
    uvloop = pytest.importorskip("uvloop")
    assert loop_factory("auto") == (uvloop.new_event_loop, "uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: import raises ImportError
    assert loop_factory("auto") == (asyncio.new_event_loop, "asyncio")
    with pytest.raises(CommandError, match="not installed"):
        loop_factory("uvloop")
    with pytest.raises(CommandError, match="--event-loop must be one of"):
        loop_factory("trio")  # a bad SIP_EVENT_LOOP setting reaches here: argparse skips defaults


@pytest.mark.slow
def test_sigkilled_bridge_call_is_finalised_by_the_next_bridge(tmp_path):
    require("unshare")
    env = bridge_env(tmp_path)
    prepare_db(env)
    recordings = Path(env["MEDIA_ROOT"]) / "recordings"
    script = (bridge_script(tmp_path, agent="echo")
              + f"{shlex.quote(PY)} -m tests.bridge.rawcall 5060 {shlex.quote(str(recordings))} "
                f"> {shlex.quote(str(tmp_path / 'call.out'))} || exit 3\n"
              + "kill -KILL $BRIDGE; wait $BRIDGE 2>/dev/null\n"
              + bridge_script(tmp_path, agent="echo", log="bridge2.log") + STOP_BRIDGE)
    out = run_in_netns(script, env)
    log2 = (tmp_path / "bridge2.log").read_text(errors="replace")
    assert out.returncode == 0, out.stderr + (tmp_path / "bridge.log").read_text(errors="replace")
    call_id = (tmp_path / "call.out").read_text().strip()
    rows = json.loads(manage_shell(env, "import json; from telephony.models import Call; print(json.dumps(list("
                                        "Call.objects.values('sip_call_id','end_reason','ended_at','recording')),"
                                        " default=str))"))
    assert len(rows) == 1 and rows[0]["sip_call_id"] == call_id, rows
    assert rows[0]["end_reason"] == "bridge_lost" and rows[0]["ended_at"], rows
    assert "finalised 1 call(s) left open by a bridge that died" in log2, log2[-2000:]
    rec = Path(env["MEDIA_ROOT"]) / rows[0]["recording"]
    with wave.open(str(rec), "rb") as w:  # linked on the row and playable
        assert w.getnchannels() == 2 and w.getframerate() == 8000 and w.getnframes() >= 16000
