"""sipp as the carrier (a UAS): scenarios that answer, are busy, never answer, challenge with
407 then answer, or play 183 early media first. Written out per test into its temp dir."""

from __future__ import annotations

from pathlib import Path

HEAD = "[last_Via:]\n[last_From:]\n{to}\n[last_Call-ID:]\n{cseq}\n"
TAGGED = "[last_To:];tag=[pid]SIPpTag01[call_number]"
CONTACT = "Contact: <sip:carrier@[local_ip]:[local_port];transport=[transport]>\n"
SDP = ("v=0\no=carrier 1 1 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\n"
       "m=audio {port} RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\n")


def resp(status: str, *, tagged: bool = True, sdp_port: str = "", extra: str = "", cseq: str = "[last_CSeq:]",
         retrans: bool = False) -> str:
    body = SDP.format(port=sdp_port) if sdp_port else ""
    head = f"SIP/2.0 {status}\n" + HEAD.format(to=TAGGED if tagged else "[last_To:]", cseq=cseq) + extra
    head += CONTACT if tagged else ""
    head += ("Content-Type: application/sdp\n" if body else "") + "Content-Length: [len]\n\n" + body
    attrs = ' retrans="500"' if retrans else ""
    return f"<send{attrs}><![CDATA[\n{head}]]></send>\n"


RECV_BYE = '<recv request="BYE"/>\n' + resp("200 OK", tagged=False)
ANSWER = resp("200 OK", sdp_port="[media_port]", retrans=True) + '<recv request="ACK"/>\n' + RECV_BYE
TRYING = resp("100 Trying", tagged=False)

SEND_BYE = ("<pause milliseconds=\"1500\"/>\n<send retrans=\"500\"><![CDATA[\n"
            "BYE sip:talky@[remote_ip]:[remote_port] SIP/2.0\n"
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
            "From: [last_To:]\nTo: [last_From:]\n[last_Call-ID:]\nCSeq: 2 BYE\nMax-Forwards: 70\n"
            "Content-Length: 0\n\n]]></send>\n<recv response=\"200\"/>\n")

SCENARIOS = {
    "answer": '<recv request="INVITE"/>\n' + TRYING + resp("180 Ringing") + ANSWER,
    "answer_bye": ('<recv request="INVITE"/>\n' + TRYING + resp("180 Ringing")
                   + resp("200 OK", sdp_port="[media_port]", retrans=True) + '<recv request="ACK"/>\n' + SEND_BYE),
    "busy": '<recv request="INVITE"/>\n' + TRYING + resp("486 Busy Here") + '<recv request="ACK"/>\n',
    "noanswer": ('<recv request="INVITE"/>\n' + TRYING + resp("180 Ringing") + '<recv request="CANCEL"/>\n'
                 + resp("200 OK", tagged=False) + resp("487 Request Terminated", cseq="CSeq: 1 INVITE")
                 + '<recv request="ACK"/>\n'),
    "auth407": ('<recv request="INVITE"/>\n'
                + resp("{challenge}",
                       extra='{chal_header}: Digest realm="carrier.test", nonce="[pid]n[call_number]"{qop}\n')
                + '<recv request="ACK"/>\n'
                + '<recv request="INVITE"><action>{verify}</action></recv>\n'
                + '<nop hide="true" test="authvalid" next="good"/>\n'
                + resp("403 Forbidden") + '<recv request="ACK" next="end"/>\n<label id="good"/>\n'
                + TRYING + ANSWER + '<label id="end"/>\n'),
    "early183": ('<recv request="INVITE"/>\n' + TRYING + resp("183 Session Progress", sdp_port="[media_port]")
                 + '<nop><action><exec rtp_stream="{tone},1,0"/></action></nop>\n<pause milliseconds="1500"/>\n'
                 + ANSWER),
}


def write(tmp: Path, name: str, tone: Path | None = None, qop: bool = True, proxy: bool = True) -> Path:
    path = tmp / f"carrier_{name}.xml"
    steps = SCENARIOS[name].replace("{tone}", str(tone or "")).replace("{qop}", ', qop="auth"' if qop else "")
    steps = steps.replace("{challenge}", "407 Proxy Authentication Required" if proxy else "401 Unauthorized")
    steps = steps.replace("{chal_header}", "Proxy-Authenticate" if proxy else "WWW-Authenticate")
    # sipp's verifyauth reads only an Authorization header: it checks the digest of a 401 answer;
    # a 407 answer is checked for its Proxy-Authorization header (the digest math is the same code)
    verify = ('<ereg regexp="Proxy-Authorization: Digest username=.acct.*response=.[0-9a-f]{32}" search_in="msg" '
              'check_it="true" assign_to="authvalid"/>' if proxy else
              '<verifyauth assign_to="authvalid" username="acct" password="s3cret"/>')
    steps = steps.replace("{verify}", verify)
    path.write_text(f'<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n{steps}</scenario>\n')
    return path
