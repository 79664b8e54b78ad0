"""Server-rendered SVG charts (no JS chart library, no CDN)."""

from __future__ import annotations

from django.utils.html import escape

SEGMENTS = (("eot_received_ms", "#98a2b3", "end of turn"), ("llm_request_ms", "#b692f6", "LLM request"),
            ("llm_first_token_ms", "#7a5af8", "LLM first token"), ("tts_request_ms", "#53b1fd", "TTS request"),
            ("tts_first_audio_ms", "#2e90fa", "TTS first audio"), ("first_rtp_ms", "#12b76a", "first RTP"))


def bar_chart(stats: list[dict], width: int = 640) -> str:
    """p50 and p95 bars per stage."""
    row_h, label_w = 34, 150
    vmax = max([s["p95"] or 0 for s in stats] + [1])
    scale = (width - label_w - 80) / vmax
    height = row_h * len(stats) + 10  # the viewBox lets CSS shrink the chart to a narrow screen
    parts = [f'<svg class="chart bars" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="p50 and p95 per stage">']
    for i, s in enumerate(stats):
        y = 5 + i * row_h
        parts.append(f'<text x="0" y="{y + 17}" font-size="12">{escape(s["label"])}</text>')
        for j, (key, color) in enumerate((("p50", "#2e90fa"), ("p95", "#f79009"))):
            v = s[key]
            if v is None:
                continue
            w = max(1.0, v * scale)
            parts.append(f'<rect class="bar {key}" x="{label_w}" y="{y + j * 13}" width="{w:.1f}" height="11" '
                         f'fill="{color}"><title>{key} {v:.0f} ms</title></rect>')
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + j * 13 + 10}" font-size="10">{key} {v:.0f} ms'
                         f'</text>')
    parts.append("</svg>")
    return "".join(parts)


def waterfall(turns, width: int = 720) -> str:
    """One row per turn: consecutive segments from speech end to the first reply RTP packet."""
    row_h, label_w = 26, 60
    ends = [t.first_rtp_ms or 0 for t in turns] + [1]
    scale = (width - label_w - 70) / max(ends)
    height = row_h * len(turns) + 24
    parts = [f'<svg class="chart waterfall" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="latency waterfall per turn">']
    for i, t in enumerate(turns):
        y = 4 + i * row_h
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">turn {t.index}</text>')
        prev = 0.0
        for field, color, label in SEGMENTS:
            v = getattr(t, field)
            if v is None:
                continue
            start = max(prev, 0.0)
            w = max(0.0, v - start) * scale
            parts.append(f'<rect class="seg" x="{label_w + start * scale:.1f}" y="{y}" width="{w:.1f}" height="18" '
                         f'fill="{color}"><title>{label}: {v:.0f} ms</title></rect>')
            prev = max(prev, v)
        if t.first_rtp_ms is not None:
            parts.append(f'<text x="{label_w + prev * scale + 4:.1f}" y="{y + 14}" font-size="11">'
                         f'{t.first_rtp_ms:.0f} ms</text>')
    legend_y = row_h * len(turns) + 18
    x = 0
    for _, color, label in SEGMENTS:
        parts.append(f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 13}" y="{legend_y}" font-size="10">{label}</text>')
        x += 13 + 7 * len(label) + 10
    parts.append("</svg>")
    return "".join(parts)


def two_lanes(rec, width: int = 1000, lane_h: int = 48) -> str:
    """The recording as two mirrored peak lanes (caller above, agent below) with a playhead the
    page's script moves; x is time, so a click maps straight to a position in the audio."""
    n = max(len(rec.caller_peaks), len(rec.agent_peaks), 1)
    step = width / n
    parts = [f'<svg class="wave" id="wave" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {2 * lane_h + 8}" '
             f'preserveAspectRatio="none" data-duration="{rec.duration_s:.3f}" role="img" '
             f'aria-label="waveform: caller (top) and agent (bottom)">']
    for lane, (peaks, color, label) in enumerate(((rec.caller_peaks, "#2e90fa", "caller"),
                                                  (rec.agent_peaks, "#12b76a", "agent"))):
        mid = lane * (lane_h + 8) + lane_h / 2
        d = []
        for i, p in enumerate(peaks):
            h = max(0.5, min(1.0, p * 1.6) * (lane_h / 2 - 1))
            d.append(f"M{i * step:.1f} {mid - h:.1f}V{mid + h:.1f}")
        parts.append(f'<path class="lane {label}" d="{"".join(d)}" stroke="{color}" '
                     f'stroke-width="{max(1.0, step * 0.8):.1f}" fill="none"><title>{label}</title></path>')
        parts.append(f'<text x="4" y="{mid - lane_h / 2 + 11:.0f}" font-size="10" fill="#475467">{label}</text>')
    parts.append(f'<line id="playhead" x1="0" x2="0" y1="0" y2="{2 * lane_h + 8}" stroke="#f04438" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def turn_bar(t, scale_ms: float, width: int = 320) -> str:
    """One turn's waterfall as a single stacked bar (same segments and colours as ``waterfall``)."""
    scale = (width - 2) / max(scale_ms, 1.0)
    parts = [f'<svg class="turnbar" xmlns="http://www.w3.org/2000/svg" width="{width}" height="14" '
             f'viewBox="0 0 {width} 14" role="img" aria-label="latency of turn {t.index}">']
    prev = 0.0
    for field, color, label in SEGMENTS:
        v = getattr(t, field)
        if v is None:
            continue
        start = max(prev, 0.0)
        w = max(0.0, v - start) * scale
        parts.append(f'<rect class="seg" x="{1 + start * scale:.1f}" y="1" width="{w:.1f}" height="12" fill="{color}">'
                     f'<title>{escape(label)}: {v:.0f} ms</title></rect>')
        prev = max(prev, v)
    parts.append("</svg>")
    return "".join(parts)
