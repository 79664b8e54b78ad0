"""Transfer against real SIP peers inside a private network namespace: sipp calls the bridge as
the caller (extension 100) and the bridge's test agent transfers the call to +12015550123.

- The caller accepts REFER (202) and reports NOTIFY 100 then NOTIFY 200: the bridge sends BYE and
  the Call row ends "transferred".
- The caller refuses REFER (603): the bridge dials the target through the campaign's trunk (a
  second sipp, a UAS that answers and echoes RTP) and relays audio: the caller's 440 Hz tone is on
  the channel we sent to the target, and the target's echo of it comes back to the caller.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.outbound import carrier
from tests.sip.peers import PY, STOP_BRIDGE, bridge_env, manage_shell, prepare_db, read_wav, require, run_in_netns

pytestmark = [pytest.mark.interop, pytest.mark.slow]

SETUP = """
from campaigns.models import Campaign, DialerSettings, Trunk
t = Trunk.objects.create(name="sipp", host="127.0.0.1", port=5090, allowed_prefixes="+1201")
DialerSettings.objects.create(campaign=Campaign.objects.get(extension="100"), trunk=t)
"""
CALLS = ("import json; from telephony.models import Call; print(json.dumps(list(Call.objects.order_by('id').values("
         "'direction','outcome','end_reason','dialed','packets_in','packets_out','recording')), default=str))")

FROM = "From: sipp <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n"
TO = "To: <sip:100@[remote_ip]:[remote_port]>[peer_tag_param]\n"
COMMON = "Call-ID: [call_id]\nContact: <sip:caller@[local_ip]:[local_port]>\nMax-Forwards: 70\n"
VIA = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
SDP = ("v=0\no=caller 1 1 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\n"
       "m=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\n")
INVITE = ('<send retrans="500"><![CDATA[\nINVITE sip:100@[remote_ip]:[remote_port] SIP/2.0\n' + VIA + FROM
          + "To: <sip:100@[remote_ip]:[remote_port]>\n" + COMMON
          + "CSeq: 1 INVITE\nContent-Type: application/sdp\nContent-Length: [len]\n\n" + SDP + "]]></send>\n"
          '<recv response="100" optional="true"/>\n<recv response="180" optional="true"/>\n'
          '<recv response="200" rrs="true"/>\n'
          "<send><![CDATA[\nACK sip:100@[remote_ip]:[remote_port] SIP/2.0\n" + VIA + FROM + TO + COMMON
          + "CSeq: 1 ACK\nContent-Length: 0\n\n]]></send>\n")
TONE = '<nop><action><exec rtp_stream="{tone},-1,0"/></action></nop>\n'


def answer(status: str) -> str:
    return ('<recv request="REFER"/>\n<send><![CDATA[\n' + f"SIP/2.0 {status}\n"
            + "[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\n"
            + "Contact: <sip:caller@[local_ip]:[local_port]>\nContent-Length: 0\n\n]]></send>\n")


def notify(cseq: int, frag: str, state: str) -> str:
    body = f"SIP/2.0 {frag}\n"
    return ('<send retrans="500"><![CDATA[\nNOTIFY sip:talky@[remote_ip]:[remote_port] SIP/2.0\n' + VIA + FROM + TO
            + COMMON + f"CSeq: {cseq} NOTIFY\nEvent: refer\nSubscription-State: {state}\n"
            + "Content-Type: message/sipfrag;version=2.0\nContent-Length: [len]\n\n" + body + "]]></send>\n"
            + '<recv response="200"/>\n')


RECV_BYE = ('<recv request="BYE"/>\n<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n'
            "[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n")
SEND_BYE = ('<pause milliseconds="3000"/>\n<send retrans="500"><![CDATA[\nBYE sip:talky@[remote_ip]:[remote_port] '
            "SIP/2.0\n" + VIA + FROM + TO + COMMON + "CSeq: 2 BYE\nContent-Length: 0\n\n]]></send>\n"
            '<recv response="200"/>\n')
SCENARIOS = {
    "accepts": INVITE + answer("202 Accepted") + notify(2, "100 Trying", "active;expires=60")
    + notify(3, "200 OK", "terminated;reason=noresource") + RECV_BYE,
    "refuses": INVITE + TONE + answer("603 Decline") + SEND_BYE,
}


@pytest.fixture
def env(tmp_path):
    e = bridge_env(tmp_path, TRANSFER_TARGET="+12015550123")
    prepare_db(e)
    manage_shell(e, SETUP)
    return e


def run(tmp: Path, env: dict, scenario: str, *, target: bool) -> str:
    tone = tmp / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(tone), "synth", "1.0", "sine", "440",
                    "vol", "0.5"], check=True, timeout=30)
    xml = tmp / f"caller_{scenario}.xml"
    xml.write_text(f'<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{scenario}">\n'
                   + SCENARIOS[scenario].replace("{tone}", str(tone)) + "</scenario>\n")
    q = shlex.quote
    bridge = (f"{q(PY)} -m tests.transfer.bridge_main --agent transfer --port 5060 --rtp-ports 20000-20998 "
              f"> {q(str(tmp / 'bridge.log'))} 2>&1 &\nBRIDGE=$!\n"
              f"for i in $(seq 1 100); do grep -q 'listening on udp' {q(str(tmp / 'bridge.log'))} 2>/dev/null "
              "&& break; sleep 0.1; done\n")
    callee = ""
    if target:
        uas = carrier.write(tmp, "answer")
        callee = (f"sipp -sf {q(str(uas))} -i 127.0.0.1 -p 5090 -mi 127.0.0.1 -mp 6100 -m 1 -rtp_echo -nostdin "
                  f"-timeout 30s -timeout_error > {q(str(tmp / 'target.log'))} 2>&1 &\nTARGET=$!\n"
                  "for i in $(seq 1 50); do ss -lun | grep -q ':5090 ' && break; sleep 0.1; done\n")
    caller = (f"sipp -sf {q(str(xml))} -i 127.0.0.1 -p 5070 -mi 127.0.0.1 -mp 6000 -m 1 -nostdin -timeout 30s "
              f"-timeout_error -trace_err -error_file {q(str(tmp / 'caller_err.log'))} 127.0.0.1:5060 "
              f"> {q(str(tmp / 'caller.log'))} 2>&1\necho \"CALLER_RC=$?\"\n")
    wait_target = 'wait $TARGET\necho "TARGET_RC=$?"\n' if target else ""
    out = run_in_netns(bridge + callee + caller + wait_target + STOP_BRIDGE, env, timeout=120)
    log = (tmp / "bridge.log").read_text()
    err = (tmp / "caller_err.log").read_text() if (tmp / "caller_err.log").exists() else ""
    assert "CALLER_RC=0" in out.stdout, out.stdout + err[-2000:] + log[-3000:]
    if target:
        assert "TARGET_RC=0" in out.stdout, out.stdout + (tmp / "target.log").read_text()[-2000:] + log[-3000:]
    return log


def calls(env) -> list[dict]:
    return json.loads(manage_shell(env, CALLS))


def tone_level(x: np.ndarray, rate: int = 8000) -> float:
    """Share of the signal's energy near 440 Hz (1.0 = a pure tone, ~0 = silence or noise)."""
    if not len(x) or not np.any(x):
        return 0.0
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spectrum[(freqs > 420) & (freqs < 460)].sum() / spectrum.sum())


def test_caller_accepts_refer_notify_200_ends_transferred(tmp_path, env):
    require("sipp", "sox", "unshare")
    log = run(tmp_path, env, "accepts", target=False)
    assert "transferred by REFER to sip:+12015550123@127.0.0.1:5090" in log, log[-3000:]
    [row] = calls(env)  # nobody was dialled: the caller's phone made the new call
    assert row["direction"] == "inbound" and row["end_reason"] == "transferred", row


def test_caller_refuses_refer_bridge_dials_target_and_relays_audio(tmp_path, env):
    require("sipp", "sox", "unshare")
    log = run(tmp_path, env, "refuses", target=True)
    assert "REFER refused (603)" in log and "bridged to sip:+12015550123@127.0.0.1:5090" in log, log[-3000:]
    caller, leg = calls(env)
    assert caller["direction"] == "inbound" and caller["end_reason"] == "bye"
    assert leg["direction"] == "outbound" and leg["outcome"] == "answered" and leg["dialed"] == "+12015550123"
    assert leg["end_reason"] == "transferred"  # the caller hung up: the bridge ended the target's leg
    assert leg["packets_out"] > 50 and leg["packets_in"] > 50, leg
    media = Path(env["MEDIA_ROOT"])
    sent_to_target, _ = read_wav(media / leg["recording"], 1)  # right channel = what we sent the target
    assert tone_level(sent_to_target) > 0.5, "the caller's tone reached the target"
    back_to_caller, _ = read_wav(media / caller["recording"], 1)
    assert tone_level(back_to_caller) > 0.3, "the target's echo reached the caller (its recording goes on)"
