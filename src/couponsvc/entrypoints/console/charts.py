"""SVG charts drawn on the server: a stacked inventory bar and a per-day activity chart.  Nothing is
fetched from anywhere; every label is escaped; each chart has a table beside it in the page."""

from __future__ import annotations

from markupsafe import Markup, escape

from couponsvc.service_layer.inventory import DailyActivity, Inventory

COLORS = {"available": "#2f9e5b", "dispatched": "#3b6fd8", "distributed": "#0f8b8d", "redeemed": "#8b4fd1",
          "expired": "#a3a9b3"}
EMPTY = "#e6e8ec"


def stacked_bar(inv: Inventory, width: int = 220, height: int = 14) -> Markup:
    parts = [("available", inv.available), ("dispatched", inv.dispatched), ("distributed", inv.distributed),
             ("redeemed", inv.redeemed), ("expired", inv.expired)]
    total = sum(n for _, n in parts)
    label = ", ".join(f"{n:,} {name}" for name, n in parts if n or name != "distributed")
    out = [f'<svg class="bar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(label)}"><rect width="{width}" height="{height}" rx="3" fill="{EMPTY}"/>']
    x = 0.0
    for name, n in parts:
        if not total or not n:
            continue
        w = width * n / total
        out.append(f'<rect x="{x:.2f}" width="{max(w, 1):.2f}" height="{height}" fill="{COLORS[name]}">'
                   f'<title>{n:,} {name}</title></rect>')
        x += w
    out.append("</svg>")
    return Markup("".join(out))


def daily_chart(activity: DailyActivity, width: int = 760, height: int = 200) -> Markup:
    left, bottom, top = 40, 22, 10
    plot_w, plot_h = width - left - 8, height - bottom - top
    top_value = max([1, *activity.dispatched, *activity.redeemed])
    peak = top_value if top_value < 4 else -(-top_value // 4) * 4  # a multiple of 4: whole-number ticks
    n = len(activity.days) or 1
    slot = plot_w / n
    bar = max(1.0, slot * 0.38)
    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="Coupons dispatched and redeemed per day, last {n} days">']
    for frac in ((0, 0.25, 0.5, 0.75, 1) if peak >= 4 else (0, 1)):
        y = top + plot_h * (1 - frac)
        out.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dde1e6"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#5f6b7a">'
                   f'{int(round(peak * frac)):,}</text>')
    for i, day in enumerate(activity.days):
        x0 = left + i * slot + (slot - 2 * bar) / 2
        for j, (series, values) in enumerate((("dispatched", activity.dispatched),
                                              ("redeemed", activity.redeemed))):
            v = values[i]
            h = plot_h * v / peak
            out.append(f'<rect x="{x0 + j * bar:.2f}" y="{top + plot_h - h:.2f}" width="{bar:.2f}" '
                       f'height="{max(h, 0):.2f}" fill="{COLORS[series]}"><title>{escape(day)}: {v:,} {series}'
                       f'</title></rect>')
        if i % 5 == 0 or i == n - 1:
            out.append(f'<text x="{left + i * slot + slot / 2:.1f}" y="{height - 6}" text-anchor="middle" '
                       f'font-size="11" fill="#5f6b7a">{escape(day[5:])}</text>')
    out.append("</svg>")
    return Markup("".join(out))
