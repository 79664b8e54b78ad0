"""A minimal raw-UDP caller for crash tests: INVITE, wait for 200, ACK, then wait until the
bridge's recording of the call holds audio, print the Call-ID and exit without hanging up.

    python -m tests.bridge.rawcall PORT RECORDINGS_DIR
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


def main(port: int, recordings: Path, deadline_s: float = 30.0) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(deadline_s)
    me = sock.getsockname()[1]
    call_id = f"crash-{me}"
    head = (f"INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKc{me};rport\r\n"
            f"From: <sip:t@127.0.0.1>;tag=ft\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:t@127.0.0.1:{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n\r\n")
    sock.sendto((head + SDP).encode(), ("127.0.0.1", port))
    while True:
        data = sock.recv(65535)
        if data.startswith(b"SIP/2.0 200"):
            break
    to = next(line for line in data.decode().split("\r\n") if line.lower().startswith("to:"))
    ack = (f"ACK sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKa{me};rport\r\n"
           f"From: <sip:t@127.0.0.1>;tag=ft\r\n{to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
    sock.sendto(ack.encode(), ("127.0.0.1", port))
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:  # a condition, not a timing: the first 2 s batch reaches the file
        files = [p for p in recordings.glob("*.wav") if p.stat().st_size > 44]
        if files:
            print(call_id, flush=True)
            return 0
        time.sleep(0.05)
    print("no recording data", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), Path(sys.argv[2])))
