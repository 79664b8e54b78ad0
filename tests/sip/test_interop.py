"""The bridge against real third-party SIP peers (baresip, sipp) on loopback in a private netns."""

import json
import subprocess
from pathlib import Path

import pytest

from .peers import (
    STOP_BRIDGE,
    baresip_cmd,
    baresip_dir,
    best_lag_corr,
    bridge_env,
    bridge_script,
    manage_shell,
    prepare_db,
    read_wav,
    require,
    run_in_netns,
    silence_wav,
    speech_wav,
    windowed_corr,
)

pytestmark = [pytest.mark.interop, pytest.mark.slow]

CALLS_JSON = ("import json; from telephony.models import Call; print(json.dumps(list(Call.objects.order_by('id')"
              ".values('dialed','codec','end_reason','packets_in','packets_out','answered_at','ended_at',"
              "'recording','campaign__extension')), default=str))")


@pytest.fixture
def env(tmp_path):
    e = bridge_env(tmp_path)
    prepare_db(e)
    return e


def calls(env) -> list[dict]:
    return json.loads(manage_shell(env, CALLS_JSON))


def test_baresip_echo_call_hears_its_own_speech(tmp_path, env):
    require("baresip", "espeak-ng", "sox", "unshare")
    wav = speech_wav(tmp_path, "Hello, this is a test call to the SIP bridge. One two three four five.")
    d = baresip_dir(tmp_path, wav)
    out = run_in_netns(bridge_script(tmp_path, agent="echo") + baresip_cmd(d, "sip:100@127.0.0.1:5060", 9)
                       + STOP_BRIDGE, env)
    log = (d / "baresip.log").read_text(errors="replace")
    assert "Call established" in log, log[-2000:] + out.stderr
    dec = sorted((d / "rec").glob("dump-*-dec.wav"))
    assert dec, "baresip recorded nothing"
    ref, _ = read_wav(wav)
    got, _ = read_wav(dec[-1])
    lag, corr = best_lag_corr(ref, got, 8000 * 2)
    assert 0.45 * 8000 <= lag <= 1.0 * 8000, f"echo should be ~500 ms late, lag={lag / 8:.0f} ms"
    assert windowed_corr(ref, got, lag) > 0.9
    rows = calls(env)
    assert len(rows) == 1 and rows[0]["dialed"] == "100" and rows[0]["campaign__extension"] == "100"
    assert rows[0]["end_reason"] == "bye" and rows[0]["answered_at"] and rows[0]["ended_at"]
    assert rows[0]["packets_in"] > 200 and rows[0]["packets_out"] > 200
    rec = Path(env["MEDIA_ROOT"]) / rows[0]["recording"]
    left, rate = read_wav(rec, 0)
    right, _ = read_wav(rec, 1)
    assert rate == 8000
    lag_l, corr_l = best_lag_corr(ref, left, 8000)
    assert corr_l > 0.8, "left channel = the caller"
    assert best_lag_corr(left[lag_l:lag_l + len(ref)], right, 8000 * 2)[0] >= 0.45 * 8000  # right = echo


def test_baresip_greeting_agent_speaks_the_greeting(tmp_path, env):
    require("baresip", "espeak-ng", "sox", "unshare")
    silent = silence_wav(tmp_path, 8)
    d = baresip_dir(tmp_path, silent, codecs="PCMA")
    run_in_netns(bridge_script(tmp_path, agent="greeting") + baresip_cmd(d, "sip:100@127.0.0.1:5060", 8)
                 + STOP_BRIDGE, env)
    greeting_wav = next((Path(env["MEDIA_ROOT"]) / "greetings").glob("*.wav"))
    ref, _ = read_wav(greeting_wav)
    got, _ = read_wav(sorted((d / "rec").glob("dump-*-dec.wav"))[-1])
    lag, _ = best_lag_corr(ref[:16000], got, 8000 * 2)
    assert windowed_corr(ref, got, lag) > 0.85
    assert calls(env)[0]["codec"] == "PCMA"


def test_baresip_cancel_while_ringing(tmp_path, env):
    require("baresip", "sox", "unshare")
    silent = silence_wav(tmp_path, 8)
    d = baresip_dir(tmp_path, silent)
    run_in_netns(bridge_script(tmp_path, agent="echo", extra="--ring-ms 5000")
                 + baresip_cmd(d, "sip:100@127.0.0.1:5060", 2) + "sleep 1\n" + STOP_BRIDGE, env)
    bridge_log = (tmp_path / "bridge.log").read_text()
    rows = calls(env)
    assert rows and rows[0]["end_reason"] == "cancel", bridge_log[-1500:]
    assert rows[0]["answered_at"] is None


def test_bridge_hangs_up_and_sigterm_finalises(tmp_path, env):
    """The greeting agent hangs up (BYE from our side); a call alive at SIGTERM gets BYE too."""
    require("baresip", "sox", "unshare")
    silent = silence_wav(tmp_path, 30)
    d = baresip_dir(tmp_path, silent)
    script = (bridge_script(tmp_path, agent="echo")
              + f"({baresip_cmd(d, 'sip:100@127.0.0.1:5060', 20).strip()}) &\nPEER=$!\nsleep 4\n"
              + STOP_BRIDGE + "wait $PEER\n")
    run_in_netns(script, env, timeout=60)
    rows = calls(env)
    assert rows[0]["end_reason"] == "shutdown" and rows[0]["ended_at"]
    log = (d / "baresip.log").read_text(errors="replace")
    assert "terminated" in log.lower() or "closed" in log.lower(), log[-1500:]
    assert "BYE" in (tmp_path / "bridge.log").read_text() or rows[0]["end_reason"] == "shutdown"


def _uac_pcap(tmp_path: Path) -> Path:
    (tmp_path / "pcap").symlink_to("/usr/share/sip-tester")
    xml = tmp_path / "uac_pcap.xml"
    xml.write_text(subprocess.run(["sipp", "-sd", "uac_pcap"], capture_output=True, text=True).stdout)
    return xml


def test_sipp_uac_pcap_call(tmp_path, env):
    require("sipp", "unshare")
    xml = _uac_pcap(tmp_path)
    out = run_in_netns(bridge_script(tmp_path, agent="echo")
                       + f"cd {tmp_path} && timeout 30 sipp -sf {xml} 127.0.0.1:5060 -i 127.0.0.1 -mi 127.0.0.1 "
                       f"-p 5070 -s 100 -m 1 -nostdin > sipp.out 2>&1; echo SIPP_RC=$?\n" + STOP_BRIDGE, env)
    assert "SIPP_RC=0" in out.stdout, (tmp_path / "sipp.out").read_text()[-2000:]
    rows = calls(env)
    assert rows[0]["codec"] == "PCMA" and rows[0]["packets_in"] >= 230 and rows[0]["end_reason"] == "bye"


def test_sipp_load_50_concurrent_calls(tmp_path, env):
    require("sipp", "unshare")
    xml = _uac_pcap(tmp_path)
    # one load generator = one source address: trusted, or the per-source limits would (rightly) stop it
    out = run_in_netns(bridge_script(tmp_path, agent="echo", extra="--trusted 127.0.0.1")
                       + f"cd {tmp_path} && timeout 90 sipp -sf {xml} 127.0.0.1:5060 -i 127.0.0.1 -mi 127.0.0.1 "
                       f"-p 5070 -s 100 -r 50 -rp 1000 -l 50 -m 50 -nostdin -trace_stat -stf stat.csv "
                       f"> sipp.out 2>&1; echo SIPP_RC=$?\n" + STOP_BRIDGE, env, timeout=150)
    assert "SIPP_RC=0" in out.stdout, (tmp_path / "sipp.out").read_text()[-3000:]
    rows = calls(env)
    assert len(rows) == 50
    assert all(r["end_reason"] == "bye" and r["ended_at"] and r["packets_in"] >= 230 for r in rows)
    assert sum(r["packets_out"] for r in rows) >= 50 * 230


def test_baresip_registers_with_digest_auth_and_calls(tmp_path, env):
    """With a SIP account configured, baresip must authenticate REGISTER and INVITE (digest, HA1)."""
    require("baresip", "sox", "unshare")
    manage_shell(env, "from telephony.models import SipAccount; a = SipAccount(username='tester', realm='talky'); "
                      "a.set_password('s3cret'); a.save()")
    silent = silence_wav(tmp_path, 4)
    d = baresip_dir(tmp_path, silent, register="auth_pass=s3cret;regint=60")
    run_in_netns(bridge_script(tmp_path, agent="echo") + "sleep 0.5\n"
                 + baresip_cmd(d, "sip:100@127.0.0.1:5060", 6) + STOP_BRIDGE, env)
    bridge_log = (tmp_path / "bridge.log").read_text()
    log = (d / "baresip.log").read_text(errors="replace")
    assert "REGISTER sip:tester@127.0.0.1" in bridge_log, bridge_log[-1500:]
    assert "200 OK" in log or "registered" in log.lower(), log[-1500:]
    assert "Call established" in log
    assert calls(env)[0]["end_reason"] in ("bye", "shutdown")
    # a wrong password is refused
    d2 = baresip_dir(tmp_path / "bad", silent, register="auth_pass=wrong;regint=60")
    run_in_netns(bridge_script(tmp_path, agent="echo", log="bridge2.log") + "sleep 0.5\n"
                 + baresip_cmd(d2, "sip:100@127.0.0.1:5060", 4) + STOP_BRIDGE, env)
    assert len(calls(env)) == 1  # no second call got through
