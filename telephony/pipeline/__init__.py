"""The voice pipeline: STT -> LLM -> TTS per call, turn-taking, barge-in, latency at the wire."""
