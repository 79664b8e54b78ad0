// AudioWorklet for browser calls: microphone -> 8 kHz mu-law 20 ms frames (posted to the page),
// and 8 kHz mu-law frames from the server -> the speakers, through a small jitter buffer.
// Runs at the AudioContext's own rate (44.1/48 kHz) and resamples itself, so it works whatever
// rate the device has. "clear" (barge-in) drops everything not yet played.
"use strict";

const RATE = 8000;
const FRAME = 160;

function ulawEncode(s) { // s: int16
  const BIAS = 0x84, CLIP = 32635;
  let sign = (s >> 8) & 0x80;
  if (sign) s = -s;
  if (s > CLIP) s = CLIP;
  s += BIAS;
  let exp = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exp > 0; exp--, mask >>= 1) {}
  const mant = (s >> (exp + 3)) & 0x0f;
  return ~(sign | (exp << 4) | mant) & 0xff;
}

const ULAW = new Float32Array(256);
for (let i = 0; i < 256; i++) {
  const u = ~i & 0xff;
  let t = ((u & 0x0f) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  ULAW[i] = ((u & 0x80) ? (0x84 - t) : (t - 0x84)) / 32768;
}

class TalkProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / RATE;  // input samples per 8 kHz sample
    this.acc = 0; this.accN = 0; this.pos = 0;  // capture: box-filter then decimate
    this.frame = new Uint8Array(FRAME); this.fill = 0;
    this.play = new Float32Array(RATE * 4); this.head = 0; this.tail = 0;  // ring of 8 kHz samples
    this.playing = false; this.phase = 0; this.level = 0; this.muted = false;
    this.port.onmessage = (e) => {
      const d = e.data;
      if (d === "clear") { this.head = this.tail = 0; this.playing = false; return; }
      if (d === "mute") { this.muted = true; return; }
      const bytes = new Uint8Array(d);
      for (let i = 0; i < bytes.length; i++) {
        const next = (this.tail + 1) % this.play.length;
        if (next === this.head) break;  // full: drop (never happens at 20 ms pacing)
        this.play[this.tail] = ULAW[bytes[i]]; this.tail = next;
      }
    };
  }

  buffered() { return (this.tail - this.head + this.play.length) % this.play.length; }

  process(inputs, outputs) {
    const input = inputs[0] && inputs[0][0];
    if (input && !this.muted) {
      for (let i = 0; i < input.length; i++) {
        this.acc += input[i]; this.accN++; this.pos += 1;
        if (this.pos >= this.step) {
          this.pos -= this.step;
          const v = Math.max(-1, Math.min(1, this.acc / this.accN));
          this.acc = 0; this.accN = 0;
          this.level = Math.max(this.level * 0.999, Math.abs(v));
          this.frame[this.fill++] = ulawEncode(Math.round(v * 32767));
          if (this.fill === FRAME) { this.port.postMessage(this.frame.slice(0).buffer); this.fill = 0; }
        }
      }
    }
    const out = outputs[0] && outputs[0][0];
    if (out) {
      if (!this.playing && this.buffered() >= FRAME * 3) this.playing = true;  // 60 ms jitter buffer
      const inc = RATE / sampleRate;
      for (let i = 0; i < out.length; i++) {
        if (this.playing && this.buffered() > 1) {
          const a = this.play[this.head], b = this.play[(this.head + 1) % this.play.length];
          out[i] = a + (b - a) * this.phase;
          this.phase += inc;
          while (this.phase >= 1) { this.phase -= 1; this.head = (this.head + 1) % this.play.length; }
        } else {
          out[i] = 0; this.playing = false;
        }
      }
      for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    }
    return true;
  }
}

registerProcessor("talky-talk", TalkProcessor);
