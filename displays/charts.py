"""Small server-side charts as inline SVG: no JavaScript library, readable without colour, printable.

Each function takes the figures of `displays.stats.day_stats` and the page's words, and returns
an SVG element (markupsafe.Markup) that scales to its container (viewBox, width 100 %). Every chart
is an image with a title and a description that says the figures in words (role="img",
aria-labelledby), every bar carries its value as text, and every series is named in a legend.
"""
from __future__ import annotations

import math
from typing import Any

from markupsafe import Markup, escape

BLUE, LIGHT_BLUE, ORANGE, GREEN, INK, MUTED, GRID = "#0b57d0", "#8fb8f5", "#c25e00", "#1a7f37", "#1b1f24", "#57606a", "#d8dee4"
STAR_COLOURS = {1: "#cf222e", 2: "#e16f24", 3: "#bf8700", 4: "#57ab5a", 5: "#1a7f37"}
WIDTH = 640
FONT = 'font-family="Noto Sans, system-ui, sans-serif"'


def nice_max(value: float) -> float:
    """The smallest round number (1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8 × 10^k) at or above `value`, at
    least 1: the top of an axis whose quarters are readable."""
    if value <= 0:
        return 1.0
    k: float = 10 ** math.floor(math.log10(value))     # int ** int is typed Any: a negative power is a float
    for m in (1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10):
        if m * k >= value - 1e-9:
            return m * k
    return 10 * k


def _fmt(v: float | None, unit: str = "", lang: str = "en") -> str:
    """A figure as the page's language writes it: 12.5 in English, 12,5 in Vietnamese."""
    if v is None:
        return "—"
    text = f"{v:.0f}" if abs(v - round(v)) < 0.05 else f"{v:.1f}"
    if lang == "vi":
        text = text.replace(".", ",")
    return f"{text}{unit}"


def _name(item: dict[str, Any], lang: str) -> str:
    return str(item.get("name_en") if lang == "en" and item.get("name_en") else item.get("name", item.get("id", "")))


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _open(title: str, desc: str, height: float, key: str) -> tuple[str, list[str]]:
    cid = f"chart-{key}"
    head = (f'<svg class="chart" id="{cid}" role="img" aria-labelledby="{cid}-t {cid}-d" '
            f'viewBox="0 0 {WIDTH} {height:.0f}" width="100%" preserveAspectRatio="xMinYMin meet" {FONT} '
            f'font-size="13" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{cid}-t">{escape(title)}</title><desc id="{cid}-d">{escape(desc)}</desc>')
    return cid, [head]


def _legend(parts: list[str], items: list[tuple[str, str, str]], y: float, x: float = 0) -> None:
    """items: (colour, label, kind) with kind 'bar' or 'line'."""
    for colour, label, kind in items:
        if kind == "line":
            parts.append(f'<line x1="{x:.0f}" y1="{y - 4:.0f}" x2="{x + 18:.0f}" y2="{y - 4:.0f}" stroke="{colour}" '
                         f'stroke-width="3"/><circle cx="{x + 9:.0f}" cy="{y - 4:.0f}" r="3.5" fill="{colour}"/>')
        else:
            parts.append(f'<rect x="{x:.0f}" y="{y - 11:.0f}" width="14" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 22:.0f}" y="{y:.0f}" fill="{INK}">{escape(label)}</text>')
        x += 32 + 7.2 * len(label)


def _empty(parts: list[str], height: float, text: str) -> Markup:
    parts.append(f'<text x="{WIDTH / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" fill="{MUTED}">{escape(text)}</text></svg>')
    return Markup("".join(parts))


def _hbars(key: str, title: str, rows: list[tuple[str, list[float | None]]], series: list[tuple[str, str]],
           unit: str, desc: str, empty: str, axis_label: str, lang: str) -> Markup:
    """Horizontal grouped bars: one group per row (label, values), one bar per series (colour, name)."""
    label_w, right, top, bar_h, gap = 190, 48, 28, 12, 6
    group_h = bar_h * len(series) + gap
    height = top + max(len(rows), 1) * group_h + 34
    _, parts = _open(title, desc, height, key)
    values = [v for _, vs in rows for v in vs if v is not None]
    if not values:
        return _empty(parts, height, empty)
    _legend(parts, [(c, n, "bar") for c, n in series], 16, label_w)
    top_value = nice_max(max(values))
    plot_w = WIDTH - label_w - right
    base_y = top + len(rows) * group_h
    for i in range(5):                       # grid and ticks
        tick = top_value * i / 4
        x = label_w + plot_w * i / 4
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{base_y:.0f}" stroke="{GRID}"/>'
                     f'<text x="{x:.1f}" y="{base_y + 16:.0f}" text-anchor="middle" fill="{MUTED}" font-size="11">{_fmt(tick, "", lang)}</text>')
    parts.append(f'<text x="{label_w + plot_w / 2:.0f}" y="{base_y + 30:.0f}" text-anchor="middle" fill="{MUTED}" '
                 f'font-size="11">{escape(axis_label)}</text>')
    for r, (label, vs) in enumerate(rows):
        y0 = top + r * group_h
        parts.append(f'<text x="{label_w - 8}" y="{y0 + (group_h - gap) / 2 + 4:.0f}" text-anchor="end" fill="{INK}">'
                     f'<title>{escape(label)}</title>{escape(_clip(label, 28))}</text>')
        for s, ((colour, name), v) in enumerate(zip(series, vs)):
            y = y0 + s * bar_h
            if v is None:
                parts.append(f'<text x="{label_w + 4}" y="{y + bar_h - 3}" fill="{MUTED}" font-size="11">—</text>')
                continue
            w = max(plot_w * v / top_value, 1.5)
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 1.5}" fill="{colour}">'
                         f'<title>{escape(label)} · {escape(name)}: {_fmt(v, unit, lang)}</title></rect>'
                         f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 2.5}" fill="{INK}" font-size="10.5">{_fmt(v, "", lang)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def wait_by_field(stats: dict[str, Any], w: dict[str, str], lang: str) -> Markup:
    """Mean and p90 wait (minutes) of each field that has called numbers today."""
    rows = [(_name(f, lang), [f["wait"]["mean"], f["wait"]["p90"]]) for f in stats["fields"] if f["wait"]["count"]]
    desc = "; ".join(f"{n}: {w['mean']} {_fmt(m, '', lang)} {w['minutes']}, p90 {_fmt(p, '', lang)} {w['minutes']}"
                     for n, (m, p) in rows)
    return _hbars("wait", w["chart_wait_title"], rows, [(BLUE, w["mean"]), (LIGHT_BLUE, "p90")], " " + w["minutes"],
                  desc or w["no_data"], w["no_data"], w["axis_minutes"], lang)


def wait_by_channel(stats: dict[str, Any], w: dict[str, str], lang: str) -> Markup:
    """Mean wait by channel (kiosk, online): all fields, then each field where either channel was called."""
    overall = (w["all_fields"], [stats["channels"]["kiosk"]["wait"]["mean"], stats["channels"]["online"]["wait"]["mean"]])
    rows = [(_name(f, lang), [f["wait_by_channel"]["kiosk"]["mean"], f["wait_by_channel"]["online"]["mean"]])
            for f in stats["fields"] if f["wait"]["count"]]
    rows = [overall, *rows] if rows else []
    desc = "; ".join(f"{n}: {w['kiosk']} {_fmt(k, '', lang)}, {w['online']} {_fmt(o, '', lang)} {w['minutes']}"
                     for n, (k, o) in rows)
    return _hbars("channel", w["chart_channel_title"], rows, [(BLUE, w["kiosk"]), (ORANGE, w["online"])],
                  " " + w["minutes"], desc or w["no_data"], w["no_data"], w["axis_mean_minutes"], lang)


def calls_per_hour(stats: dict[str, Any], w: dict[str, str], lang: str) -> Markup:
    """Calls per clock hour (bars, left axis) and counters staffed in that hour (line, right axis)."""
    hours = stats["hours"]
    left, right, top, bottom, height = 44, 44, 34, 40, 300
    _, parts = _open(w["chart_hours_title"], _hours_desc(hours, w, lang), height, "hours")
    if not hours or not any(h["calls"] or h["counters"] for h in hours):
        return _empty(parts, height, w["no_data"])
    _legend(parts, [(BLUE, w["calls"], "bar"), (GREEN, w["staffed_counters"], "line")], 16, left)
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    calls_top = nice_max(max(h["calls"] for h in hours))
    ctr_top = nice_max(max(h["counters"] for h in hours))
    base = top + plot_h
    for i in range(5):
        y = base - plot_h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{WIDTH - right}" y2="{y:.1f}" stroke="{GRID}"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{BLUE}" font-size="11">{_fmt(calls_top * i / 4, "", lang)}</text>'
                     f'<text x="{WIDTH - right + 6}" y="{y + 4:.1f}" fill="{GREEN}" font-size="11">{_fmt(ctr_top * i / 4, "", lang)}</text>')
    slot = plot_w / len(hours)
    points = []
    for i, h in enumerate(hours):
        x = left + i * slot
        bh = plot_h * h["calls"] / calls_top
        tip = f'{h["label"]}: {h["calls"]} {w["calls"].lower()}, {_fmt(h["counters"], "", lang)} {w["staffed_counters"].lower()}'
        if h["calls"]:
            parts.append(f'<rect x="{x + slot * 0.18:.1f}" y="{base - bh:.1f}" width="{slot * 0.64:.1f}" height="{bh:.1f}" '
                         f'fill="{LIGHT_BLUE if h.get("partial") else BLUE}"><title>{escape(tip)}</title></rect>'
                         f'<text x="{x + slot / 2:.1f}" y="{base - bh - 4:.1f}" text-anchor="middle" fill="{INK}" '
                         f'font-size="11">{h["calls"]}</text>')
        parts.append(f'<text x="{x + slot / 2:.1f}" y="{base + 16:.0f}" text-anchor="middle" '
                     f'fill="{MUTED if h["future"] else INK}" font-size="11">{h["label"][:2]}h{"*" if h.get("partial") else ""}</text>')
        if not h["future"] or h["counters"]:
            points.append((x + slot / 2, base - plot_h * h["counters"] / ctr_top, tip))
    if points:
        parts.append(f'<polyline fill="none" stroke="{GREEN}" stroke-width="2.5" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points) + '"/>')
        for x, y, tip in points:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{GREEN}"><title>{escape(tip)}</title></circle>')
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle" fill="{MUTED}" font-size="11">'
                 f'{escape(w["axis_hour"])}</text></svg>')
    return Markup("".join(parts))


def _hours_desc(hours: list[dict[str, Any]], w: dict[str, str], lang: str) -> str:
    done = [h for h in hours if h["calls"] or h["counters"]]
    if not done:
        return w["no_data"]
    return "; ".join(f'{h["label"]}: {h["calls"]} {w["calls"].lower()}, {_fmt(h["counters"], "", lang)} '
                     f'{w["staffed_counters"].lower()}' for h in done)


def ratings(stats: dict[str, Any], w: dict[str, str], lang: str) -> Markup:
    """How many ratings of each score, 5 stars at the top."""
    r = stats["ratings"]
    label_w, right, top, bar_h = 70, 90, 12, 26
    height = top + 5 * bar_h + 10
    dist = {d["score"]: d["count"] for d in r["distribution"]}
    desc = (f'{r["count"]} {w["ratings_n"]}, {w["mean"]} {_fmt(r["mean"], "", lang)}/5; '
            + "; ".join(f"{s}★: {dist[s]}" for s in range(5, 0, -1))) if r["count"] else w["no_ratings"]
    _, parts = _open(w["chart_ratings_title"], desc, height, "ratings")
    if not r["count"]:
        return _empty(parts, height, w["no_ratings"])
    top_value = max(dist.values()) or 1
    plot_w = WIDTH - label_w - right
    for i, s in enumerate(range(5, 0, -1)):
        y = top + i * bar_h
        n = dist[s]
        share = 100 * n / r["count"]
        bw = plot_w * n / top_value
        parts.append(f'<text x="{label_w - 10}" y="{y + bar_h / 2 + 4:.0f}" text-anchor="end" fill="{INK}">{s} ★</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{plot_w:.0f}" height="{bar_h - 8}" fill="#f3f4f6"/>')
        if n:
            parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{bw:.1f}" height="{bar_h - 8}" fill="{STAR_COLOURS[s]}">'
                         f'<title>{s}★: {n} ({share:.0f} %)</title></rect>')
        parts.append(f'<text x="{WIDTH - right + 8}" y="{y + bar_h / 2 + 4:.0f}" fill="{INK}">{n} '
                     f'<tspan fill="{MUTED}" font-size="11">({share:.0f} %)</tspan></text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def all_charts(stats: dict[str, Any], w: dict[str, str], lang: str) -> dict[str, Markup]:
    return {"wait": wait_by_field(stats, w, lang), "channel": wait_by_channel(stats, w, lang),
            "hours": calls_per_hour(stats, w, lang), "ratings": ratings(stats, w, lang)}
