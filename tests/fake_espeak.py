"""A stand-in espeak-ng on PATH that reports how it was called (argv and stdin) over a unix socket,
so a test can await the exact invocation instead of guessing from audio. It prints a short silent
WAV like the real program. It reads stdin only when told to (--stdin): run with text as an
argument it must not wait for input that never comes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

_SCRIPT = r'''
import json, os, socket, struct, sys
argv = sys.argv[1:]
text = sys.stdin.buffer.read().decode("utf-8", "replace") if "--stdin" in argv else None
with socket.socket(socket.AF_UNIX) as s:
    s.connect(os.environ["FAKE_ESPEAK_SOCK"])
    s.sendall(json.dumps({"argv": argv, "stdin": text}).encode())
pcm = b"\x00\x00" * 2205
hdr = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 22050, 44100, 2, 16)
sys.stdout.buffer.write(hdr + b"data" + struct.pack("<I", len(pcm)) + pcm)
'''


@asynccontextmanager
async def fake_espeak(tmp_path: Path, monkeypatch):
    """Yields a queue of ``{"argv": [...], "stdin": str | None}``, one per espeak-ng run."""
    calls: asyncio.Queue = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await calls.put(json.loads(await reader.read()))
        writer.close()

    sock = tmp_path / "espeak.sock"
    server = await asyncio.start_unix_server(handle, path=str(sock))
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    script = bindir / "espeak-ng"
    script.write_text(f"#!{sys.executable}\n{_SCRIPT}")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_ESPEAK_SOCK", str(sock))
    try:
        yield calls
    finally:
        server.close()
        await server.wait_closed()
