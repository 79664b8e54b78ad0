"""Outbound calls into sipp playing the carrier, inside a private network namespace: each sipp
UAS scenario against `manage.py dial --standalone`, outcomes read back from the Call rows."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.sip.peers import (
    PY,
    STOP_BRIDGE,
    bridge_env,
    bridge_script,
    manage_shell,
    prepare_db,
    read_wav,
    require,
    run_in_netns,
)

from . import carrier

pytestmark = [pytest.mark.interop, pytest.mark.slow]

SETUP = """
from campaigns.models import Campaign, DialerSettings, Trunk
t = Trunk.objects.create(name="sipp", host="127.0.0.1", port=5090, username="acct", password="s3cret",
                         allowed_prefixes="+1201", from_user="+15550001111", from_display="Acme Dental")
DialerSettings.objects.create(campaign=Campaign.objects.get(extension="100"), trunk=t)
print(Campaign.objects.get(extension="100").pk)
"""
CALLS = ("import json; from telephony.models import Call; print(json.dumps(list(Call.objects.order_by('id').values("
         "'direction','outcome','sip_status','end_reason','answered_at','packets_in','packets_out','recording',"
         "'dialed','campaign_id')), default=str))")


@pytest.fixture
def env(tmp_path):
    e = bridge_env(tmp_path)
    prepare_db(e)
    e["CAMPAIGN"] = manage_shell(e, SETUP)
    return e


def run(tmp: Path, env: dict, scenario: str, dest: str = "+12015550123", *, extra: str = "",
        tone: Path | None = None, qop: bool = True, proxy: bool = True) -> tuple[int, str, str]:
    xml = carrier.write(tmp, scenario, tone, qop, proxy)
    sipp = (f"sipp -sf {shlex.quote(str(xml))} -i 127.0.0.1 -p 5090 -mi 127.0.0.1 -mp 6100 -m 1 -rtp_echo "
            f"-nostdin -timeout 20s -timeout_error -trace_err -error_file {shlex.quote(str(tmp / 'sipp_err.log'))}")
    dial = (f"{shlex.quote(PY)} manage.py dial {shlex.quote(dest)} --campaign {env['CAMPAIGN']} --standalone "
            f"--agent echo --rtp-ports 21000-21998 {extra}")
    script = f"""
{sipp} > {shlex.quote(str(tmp / 'sipp.log'))} 2>&1 &
SIPP=$!
for i in $(seq 1 50); do ss -lun | grep -q ':5090 ' && break; sleep 0.1; done
{dial} > {shlex.quote(str(tmp / 'dial.log'))} 2>&1
echo "DIAL_RC=$?"
wait $SIPP
echo "SIPP_RC=$?"
"""
    out = run_in_netns(script, env, timeout=120)
    dial_rc = int(out.stdout.split("DIAL_RC=")[1].split()[0])
    sipp_rc = int(out.stdout.split("SIPP_RC=")[1].split()[0])
    log = (tmp / "dial.log").read_text()
    assert sipp_rc == 0 or scenario == "refused", log + (tmp / "sipp.log").read_text()[-3000:]
    return dial_rc, log, out.stderr


def calls(env) -> list[dict]:
    return json.loads(manage_shell(env, CALLS))


def test_answered_call_runs_and_we_hang_up(tmp_path, env):
    require("sipp", "unshare")
    rc, log, _ = run(tmp_path, env, "answer", extra="--max-seconds 2")
    assert rc == 0, log
    assert "-> INVITE sip:+12015550123@127.0.0.1:5090" in log and "<- 180" in log and "-> ACK" in log
    [row] = calls(env)
    assert row["direction"] == "outbound" and row["outcome"] == "answered" and row["sip_status"] == 200
    assert row["answered_at"] and row["end_reason"] == "shutdown" and row["dialed"] == "+12015550123"
    assert row["packets_in"] > 30 and row["packets_out"] > 30  # sipp echoed our stream back


def test_busy(tmp_path, env):
    require("sipp", "unshare")
    rc, log, _ = run(tmp_path, env, "busy")
    assert rc == 1 and "outcome: busy (486" in log, log
    [row] = calls(env)
    assert (row["outcome"], row["sip_status"], row["answered_at"]) == ("busy", 486, None)
    assert row["packets_out"] == 0


def test_never_answers_then_cancel(tmp_path, env):
    require("sipp", "unshare")
    rc, log, _ = run(tmp_path, env, "noanswer", extra="--ring-timeout 1.5")
    assert rc == 1 and "CANCEL after 1.5 s" in log and "<- 487" in log, log
    [row] = calls(env)
    assert row["outcome"] == "no_answer" and row["sip_status"] == 487 and row["packets_out"] == 0


@pytest.mark.parametrize("proxy,qop", [(True, True), (False, False), (False, True)],
                         ids=["407", "401-rfc2069", "401-qop-auth"])
def test_challenge_then_answer(tmp_path, env, proxy, qop):
    """407 (Proxy-Authorization) and 401 (Authorization); on 401 sipp recomputes our digest."""
    require("sipp", "unshare")
    rc, log, _ = run(tmp_path, env, "auth407", extra="--max-seconds 1", qop=qop, proxy=proxy)
    assert rc == 0 and f"<- {407 if proxy else 401}" in log and "(with credentials)" in log, log
    [row] = calls(env)
    assert row["outcome"] == "answered" and row["answered_at"]


def test_183_early_media_goes_to_the_recording_only(tmp_path, env):
    require("sipp", "unshare", "sox")
    tone = tmp_path / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(tone), "synth", "1.0", "sine", "440",
                    "vol", "0.5"], check=True, timeout=30)
    rc, log, _ = run(tmp_path, env, "early183", extra="--max-seconds 1", tone=tone)
    assert rc == 0 and "<- 183" in log, log
    [row] = calls(env)
    assert row["outcome"] == "answered" and row["recording"]
    left, rate = read_wav(Path(env["MEDIA_ROOT"]) / row["recording"], 0)
    right, _ = read_wav(Path(env["MEDIA_ROOT"]) / row["recording"], 1)
    early = left[: int(1.2 * rate)]
    spectrum = np.abs(np.fft.rfft(early))
    assert abs(np.argmax(spectrum) * rate / len(early) - 440) < 10, "the carrier's early tone is recorded"
    assert np.abs(right[: int(1.2 * rate)]).max() < 200, "nothing of ours before the answer"


def test_outside_the_allowlist_is_refused_before_any_sip(tmp_path, env):
    require("sipp", "unshare")
    script = f"""
timeout 5 sipp -sn uas -i 127.0.0.1 -p 5090 -m 1 -nostdin -trace_msg -message_file {tmp_path}/msgs.log \
  > /dev/null 2>&1 &
for i in $(seq 1 50); do ss -lun | grep -q ':5090 ' && break; sleep 0.1; done
{shlex.quote(PY)} manage.py dial +442079460958 --campaign {env['CAMPAIGN']} --standalone > {tmp_path}/dial.log 2>&1
echo "DIAL_RC=$?"
wait
"""
    out = run_in_netns(script, env, timeout=60)
    log = (tmp_path / "dial.log").read_text()
    assert "DIAL_RC=2" in out.stdout and "not in the allowed destination prefixes" in log, log + out.stderr
    msgs = tmp_path / "msgs.log"
    assert not msgs.exists() or "INVITE" not in msgs.read_text()
    assert calls(env) == []


def test_dial_asks_the_running_bridge_over_its_control_channel(tmp_path, env):
    """No --standalone: the running run_sip_bridge places the call (its port and token come from
    VAR_DIR/sip_control.json) and streams the SIP steps back to the command."""
    require("sipp", "unshare")
    xml = carrier.write(tmp_path, "answer_bye")  # the carrier hangs up: our in-dialog BYE handling as UAC
    script = bridge_script(tmp_path, agent="echo") + f"""
for i in $(seq 1 50); do [ -f {tmp_path}/var/sip_control.json ] && break; sleep 0.1; done
sipp -sf {xml} -i 127.0.0.1 -p 5090 -mi 127.0.0.1 -mp 6100 -m 1 -rtp_echo -nostdin -timeout 20s \
  > {tmp_path}/sipp.log 2>&1 &
SIPP=$!
for i in $(seq 1 50); do ss -lun | grep -q ':5090 ' && break; sleep 0.1; done
{shlex.quote(PY)} manage.py dial +12015550123 --campaign {env['CAMPAIGN']} > {tmp_path}/dial.log 2>&1
echo "DIAL_RC=$?"
stat -c %a {tmp_path}/var/sip_control.json
wait $SIPP
echo "SIPP_RC=$?"
""" + STOP_BRIDGE
    out = run_in_netns(script, env, timeout=90)
    log = (tmp_path / "dial.log").read_text()
    assert "DIAL_RC=0" in out.stdout and "SIPP_RC=0" in out.stdout, log + out.stdout
    assert "\n600\n" in out.stdout  # the token file is readable by its owner only
    assert "-> INVITE" in log and "outcome: answered" in log
    [row] = calls(env)
    assert row["outcome"] == "answered" and row["end_reason"] == "bye" and row["direction"] == "outbound"
    assert not (tmp_path / "var" / "sip_control.json").exists()  # removed on a clean stop


def test_running_campaign_dials_its_contacts_through_the_bridge(tmp_path, env):
    """run_sip_bridge's dialer against sipp: three contacts of a started campaign are called
    (answered, the carrier hangs up), the Call rows carry direction, outcome and contact, and the
    contacts end up done; a DNC contact is never called."""
    require("sipp", "unshare")
    manage_shell(env, f"""
import datetime as dt
from campaigns import contacts, dialer
from campaigns.models import DialerSettings
DialerSettings.objects.filter(campaign_id={env['CAMPAIGN']}).update(window_days="0123456",
    window_start=dt.time(0), window_end=dt.time(0), max_concurrent=3, calls_per_minute=60)
contacts.add_dnc("+12015550199")
print(contacts.import_contacts({env['CAMPAIGN']}, [(2, {{"phone": "+12015550101", "first_name": "Ana"}}),
    (3, {{"phone": "+12015550102"}}), (4, {{"phone": "+12015550103"}}), (5, {{"phone": "+12015550199"}})]))
print(dialer.set_state({env['CAMPAIGN']}, "start"))
""")
    xml = carrier.write(tmp_path, "answer_bye")
    script = f"""
sipp -sf {xml} -i 127.0.0.1 -p 5090 -mi 127.0.0.1 -mp 6100 -m 3 -rtp_echo -nostdin -timeout 30s \\
  > {tmp_path}/sipp.log 2>&1 &
SIPP=$!
for i in $(seq 1 50); do ss -lun | grep -q ':5090 ' && break; sleep 0.1; done
""" + bridge_script(tmp_path, agent="echo") + """
wait $SIPP
echo "SIPP_RC=$?"
""" + STOP_BRIDGE
    out = run_in_netns(script, env, timeout=90)
    assert "SIPP_RC=0" in out.stdout, (tmp_path / "bridge.log").read_text()[-3000:]
    rows = json.loads(manage_shell(env, "import json; from telephony.models import Call; print(json.dumps(list("
                                        "Call.objects.order_by('id').values('direction','outcome','contact__phone',"
                                        "'end_reason'))))"))
    assert sorted(r["contact__phone"] for r in rows) == ["+12015550101", "+12015550102", "+12015550103"]
    assert all(r["direction"] == "outbound" and r["outcome"] == "answered" and r["end_reason"] == "bye"
               for r in rows)
    states = json.loads(manage_shell(env, "import json; from campaigns.models import Contact; print(json.dumps("
                                          "dict(Contact.objects.values_list('phone','state'))))"))
    assert states == {"+12015550101": "done", "+12015550102": "done", "+12015550103": "done",
                      "+12015550199": "dnc"}
