// "Talk" panel: a call to the agent from this browser, over the /ws/talk/ WebSocket.
// Microphone -> AudioWorklet (8 kHz mu-law, 20 ms) -> server; server audio -> worklet -> speakers.
// Shows the live transcript and each turn's latency; Hang up ends the call.
(function () {
  "use strict";
  function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; }

  function setup(panel) {
    const startBtn = panel.querySelector(".talk-start");
    const hangBtn = panel.querySelector(".talk-hangup");
    const status = panel.querySelector(".talk-status");
    const log = panel.querySelector(".talk-transcript");
    const workletUrl = panel.dataset.worklet;
    let ws = null, ctx = null, stream = null, node = null, partial = null;

    function say(text) { status.textContent = text; }
    function line(who, text, extra) {
      if (partial && who === "Caller") { partial.remove(); partial = null; }
      const p = el("p", "line " + who.toLowerCase());
      p.appendChild(el("span", "who", who)); p.appendChild(document.createTextNode(" " + text));
      if (extra) p.appendChild(el("span", "muted time", " " + extra));
      log.appendChild(p); log.scrollTop = log.scrollHeight;
      return p;
    }

    async function stop(reason) {
      if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
      if (node) node.port.postMessage("mute");
      if (ctx) { try { await ctx.close(); } catch (e) { /* already closed */ } }
      stream = ctx = node = null;
      startBtn.disabled = false; hangBtn.disabled = true;
      panel.dataset.state = "ended";
      if (reason) say(reason);
    }

    function onMessage(ev) {
      if (typeof ev.data !== "string") {
        panel.dataset.audioBytes = String((+panel.dataset.audioBytes || 0) + ev.data.byteLength);
        if (node) node.port.postMessage(ev.data, [ev.data]);
        return;
      }
      const m = JSON.parse(ev.data);
      if (m.type === "started") {
        panel.dataset.call = m.call; panel.dataset.state = "live";
        say("Connected to " + (m.campaign || "the agent") + " — speak now.");
        if (m.greeting) line("Agent", m.greeting, "(greeting)");
      } else if (m.type === "clear") {
        panel.dataset.clears = String((+panel.dataset.clears || 0) + 1);
        if (node) node.port.postMessage("clear");
      } else if (m.type === "update" && m.kind === "partial") {
        if (!partial) partial = line("Caller", "");
        partial.lastChild.textContent = " " + m.text + " …";
      } else if (m.type === "update" && m.kind === "turn") {
        line("Caller", m.user_text);
        const ms = m.mouth_to_ear_ms == null ? "-" : Math.round(m.mouth_to_ear_ms);
        const p = line("Agent", m.agent_text || "(nothing played)", ms + " ms" + (m.barge_in ? " · barge-in" : ""));
        p.classList.add("turn-reply"); p.dataset.latency = ms;
        panel.dataset.turns = String((+panel.dataset.turns || 0) + 1);
      } else if (m.type === "ended") {
        const link = el("a", null, "Open the call page"); link.href = m.call_url;
        const p = el("p", "muted", "Call ended (" + m.reason + "). "); p.appendChild(link); log.appendChild(p);
        stop("Call ended.");
      }
    }

    startBtn.addEventListener("click", async function () {
      startBtn.disabled = true; log.textContent = ""; panel.dataset.audioBytes = "0"; panel.dataset.turns = "0";
      say("Asking for the microphone…");
      try {
        stream = await navigator.mediaDevices.getUserMedia({audio: {echoCancellation: true, noiseSuppression: true,
                                                                    autoGainControl: true, channelCount: 1}});
        ctx = new AudioContext();
        await ctx.audioWorklet.addModule(workletUrl);
        node = new AudioWorkletNode(ctx, "talky-talk", {numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1]});
        ctx.createMediaStreamSource(stream).connect(node);
        node.connect(ctx.destination);
        await ctx.resume();
      } catch (e) {
        await stop("Microphone unavailable: " + e.message);
        return;
      }
      const q = panel.dataset.campaign ? "?campaign=" + encodeURIComponent(panel.dataset.campaign) : "";
      ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/talk/" + q);
      ws.binaryType = "arraybuffer";
      node.port.onmessage = function (e) { if (ws && ws.readyState === 1) ws.send(e.data); };
      ws.onmessage = onMessage;
      ws.onclose = function () { if (panel.dataset.state !== "ended") stop("Disconnected."); ws = null; };
      hangBtn.disabled = false; say("Connecting…");
    });
    hangBtn.addEventListener("click", function () {
      if (ws && ws.readyState === 1) ws.send(JSON.stringify({action: "hangup"}));
      say("Hanging up…");
    });
  }

  document.querySelectorAll(".talk-panel").forEach(setup);
})();
