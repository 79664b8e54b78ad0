"""Talk to the agent from the browser: a second transport next to SIP.

``media.BrowserCall`` implements ``telephony.media.contract.CallHandle`` over a WebSocket carrying
G.711 mu-law 20 ms frames both ways, paced by the same kind of 20 ms media clock as RTP, recorded
to the same stereo WAV; ``consumer.BrowserCallConsumer`` runs the voice pipeline on it with Call
and Turn rows like any phone call. See the README ("Talk from the browser") for why this
transport and not WebRTC.
"""
