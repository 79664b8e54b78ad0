// Call page: play the recording from a transcript line or a click on the waveform; move the playhead.
// The WAV is fetched once into a blob so every position is seekable (the file view sends no ranges).
(function () {
  "use strict";
  var player = document.getElementById("player");
  if (!player) return;
  var wave = document.getElementById("wave");
  var head = document.getElementById("playhead");
  var ready = fetch(player.dataset.src, {credentials: "same-origin"})
    .then(function (r) { if (!r.ok) throw new Error(r.status); return r.blob(); })
    .then(function (b) { player.src = URL.createObjectURL(b); player.dataset.loaded = "1"; })
    .catch(function () { /* keep the plain src */ });

  function playFrom(t) {
    ready.then(function () {
      var go = function () { player.currentTime = t; player.play().catch(function () {}); };
      if (player.readyState >= 1) go(); else player.addEventListener("loadedmetadata", go, {once: true});
    });
  }
  document.querySelectorAll(".line[data-t]").forEach(function (line) {
    var go = function () { playFrom(parseFloat(line.dataset.t)); };
    line.addEventListener("click", go);
    line.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
  });
  if (wave) {
    var dur = parseFloat(wave.dataset.duration) || 0;
    wave.addEventListener("click", function (e) {
      var box = wave.getBoundingClientRect();
      playFrom(Math.max(0, (e.clientX - box.left) / box.width) * dur);
    });
    var lines = Array.prototype.slice.call(document.querySelectorAll(".line[data-t]"));
    var follow = function () {
      if (dur && head) { var x = (player.currentTime / dur) * wave.viewBox.baseVal.width; head.setAttribute("x1", x); head.setAttribute("x2", x); }
      var current = null;
      lines.forEach(function (l) { if (parseFloat(l.dataset.t) <= player.currentTime + 0.05) current = l; });
      lines.forEach(function (l) { l.classList.toggle("playing", l === current); });
    };
    // "seeked" marks the line at once; "timeupdate" (every ~250 ms) follows the playback.
    player.addEventListener("seeked", follow);
    player.addEventListener("timeupdate", follow);
  }
})();
