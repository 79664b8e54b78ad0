"""Run the fake Flux, OpenAI-compatible and Cartesia servers as one process (for end-to-end tests
and benchmarks where the bridge is another process, e.g. inside a network namespace).

    python -m aioptions.fakes.serve --env-file fakes.env --log fakes.json [--eot-ms 250 --ttft-ms 300 ...]

Writes ``export VAR=...`` lines pointing the project's settings at the fakes, serves until SIGTERM,
then writes a JSON summary of what the fakes received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from .cartesia_server import FakeCartesiaServer
from .flux_server import FakeFluxServer
from .openai_server import FakeOpenAIServer


async def main(args) -> None:
    flux = await FakeFluxServer(energy=True, transcript=args.transcript, eot_delay_ms=args.eot_ms,
                                eager_lead_ms=args.eager_lead_ms).start()
    llm = await FakeOpenAIServer(reply=args.reply, ttft_ms=args.ttft_ms).start()
    tts = await FakeCartesiaServer(ttfb_ms=args.ttfb_ms, speedup=args.tts_speedup).start()
    env = {"DEEPGRAM_API_KEY": "fake", "DEEPGRAM_URL": flux.url, "GROQ_API_KEY": "fake",
           "GROQ_BASE_URL": llm.groq_base_url, "OPENAI_API_KEY": "", "CARTESIA_API_KEY": "fake",
           "CARTESIA_BASE_URL": tts.http_url, "CARTESIA_WS_URL": tts.ws_url}
    tmp = Path(args.env_file + ".tmp")
    tmp.write_text("".join(f"export {k}='{v}'\n" for k, v in env.items()))
    tmp.replace(args.env_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except TimeoutError:
        pass
    summary = {
        "flux_connections": [{"query": c.query, "bytes": c.bytes_received, "sent": c.sent} for c in flux.connections],
        "llm_requests": [r["json"] for r in llm.chat_requests()],
        "tts_contexts": {cid: {"voice": c.voice, "transcripts": c.transcripts, "cancelled": c.cancelled}
                         for cid, c in tts.contexts.items()},
    }
    Path(args.log).write_text(json.dumps(summary, default=str))
    for s in (flux, llm, tts):
        await s.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--env-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--transcript", default="I would like to book an appointment")
    p.add_argument("--reply", default="Sure, Tuesday at three works for you.")
    p.add_argument("--eot-ms", type=float, default=250)
    p.add_argument("--ttft-ms", type=float, default=300)
    p.add_argument("--ttfb-ms", type=float, default=90)
    p.add_argument("--tts-speedup", type=float, default=4.0)
    p.add_argument("--eager-lead-ms", type=float, default=None)
    p.add_argument("--max-seconds", type=float, default=300)
    asyncio.run(main(p.parse_args()))
