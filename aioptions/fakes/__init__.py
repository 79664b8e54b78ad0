"""Local stand-ins for the cloud providers (Flux, Groq/OpenAI, Cartesia, Google TTS), written from
their documented wire protocols: the tests and the benchmarks point the real clients at them."""
