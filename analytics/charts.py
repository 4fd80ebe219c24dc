"""Charts drawn on the server as inline SVG (no JavaScript, no CDN)."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2")
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def line_chart(
    series: dict[str, Sequence[float | None]],
    labels: Sequence[str],
    *,
    title: str,
    width: int = 520,
    height: int = 260,
    threshold: float | None = None,
) -> SafeString:
    """Lines over ``labels`` (x), one per series; ``threshold`` a dashed line."""
    left, right, top, bottom = 50, 16, 28, 44 + 16 * ((len(series) - 1) // 2)
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series.values() for v in s if v is not None]
    if threshold is not None:
        values.append(threshold)
    if not values or not labels:
        return _empty(title, width, height)
    low, high = min(0.0, min(values)), max(values)
    high = high if high > low else low + 1.0

    def x(i: int) -> float:
        return left + (plot_w * i / max(len(labels) - 1, 1))

    def y(v: float) -> float:
        return top + plot_h - plot_h * (v - low) / (high - low)

    parts = [_frame(title, width, height, left, top, plot_w, plot_h)]
    for tick in range(5):
        v = low + (high - low) * tick / 4
        parts.append(
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" {FONT}>'
            f"{_fmt(v)}</text>"
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#e5e7eb"/>'
        )
    step = max(1, len(labels) // 6)
    for i in range(0, len(labels), step):
        parts.append(
            f'<text x="{x(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle" {FONT}>'
            f"{escape(labels[i])}</text>"
        )
    if threshold is not None:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(threshold):.1f}" '
            f'y2="{y(threshold):.1f}" stroke="#dc2626" stroke-dasharray="6 4"/>'
        )
    for n, (name, points) in enumerate(series.items()):
        color = PALETTE[n % len(PALETTE)]
        coords = [
            f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(points) if v is not None
        ]
        if len(coords) > 1:
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                f'points="{" ".join(coords)}"/>'
            )
        for c in coords:
            cx, cy = c.split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
        lx = left + (n % 2) * (plot_w // 2)
        ly = top + plot_h + 24 + 16 * (n // 2)
        parts.append(
            f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{ly + 9}" {FONT}>{escape(name)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every label is escaped


def bar_chart(
    rows: Sequence[tuple[str, float, float | None]],
    *,
    title: str,
    unit: str = "",
    width: int = 520,
    bar_height: int = 22,
    flag_over: bool = True,
) -> SafeString:
    """Horizontal bars ``(label, value, target or None)``; a target is a black
    tick, and with ``flag_over`` a bar beyond its target is red."""
    left, right, top = 170, 60, 28
    height = top + bar_height * len(rows) + 16
    if not rows:
        return _empty(title, width, 80)
    high = max(
        [v for _, v, _ in rows] + [t for _, _, t in rows if t is not None] + [1e-9]
    )
    plot_w = width - left - right
    parts = [_frame(title, width, height, left, top, plot_w, bar_height * len(rows))]
    for i, (label, value, target) in enumerate(rows):
        y0 = top + i * bar_height
        w = plot_w * max(value, 0.0) / high
        over = flag_over and target is not None and value > target
        color = "#dc2626" if over else PALETTE[0]
        parts.append(
            f'<text x="{left - 6}" y="{y0 + bar_height * 0.65:.1f}" text-anchor="end" '
            f"{FONT}>{escape(label[:26])}</text>"
            f'<rect x="{left}" y="{y0 + 3}" width="{w:.1f}" height="{bar_height - 6}" '
            f'fill="{color}"><title>{escape(label)}: {_fmt(value)}{unit}</title></rect>'
            f'<text x="{left + w + 4:.1f}" y="{y0 + bar_height * 0.65:.1f}" {FONT}>'
            f"{_fmt(value)}{escape(unit)}</text>"
        )
        if target is not None:
            tx = left + plot_w * target / high
            parts.append(
                f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{y0 + 1}" '
                f'y2="{y0 + bar_height - 1}" stroke="#111827" stroke-width="2"/>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every label is escaped


def _frame(
    title: str, width: int, height: int, left: int, top: int, w: int, h: int
) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}" class="chart">'
        f'<text x="4" y="16" font-weight="600" {FONT}>{escape(title)}</text>'
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" '
        'stroke="#d1d5db"/>'
    )


def _empty(title: str, width: int, height: int) -> SafeString:
    return mark_safe(  # noqa: S308 - the title is escaped
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}" class="chart">'
        f'<text x="10" y="20" {FONT}>{escape(title)}: no data yet</text></svg>'
    )
