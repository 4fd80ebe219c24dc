"""SVG poster placeholders drawn from a movie's title and genres.

Used whenever TMDB gave no poster (no API key, no network, no match): the
colours come from a hash of the title and the first genre, so a movie keeps
its look across pages and restarts.
"""

from __future__ import annotations

import hashlib
import textwrap
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 300, 450
MAX_LINES = 5


def _hue(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:6], 16) % 360


def poster_svg(title: str, year: int | None, genres: list[str]) -> str:
    top = _hue(title)
    bottom = _hue(genres[0]) if genres else (top + 40) % 360
    lines = textwrap.wrap(title, width=16)[:MAX_LINES] or ["Untitled"]
    if len(textwrap.wrap(title, width=16)) > MAX_LINES:
        lines[-1] = lines[-1][:14] + "…"
    size = 30 if len(lines) <= 3 else 24
    first_y = HEIGHT / 2 - (len(lines) - 1) * size * 0.6
    title_tspans = "".join(
        f'<tspan x="{WIDTH / 2:.0f}" y="{first_y + i * size * 1.2:.0f}">'
        f"{escape(line)}</tspan>"
        for i, line in enumerate(lines)
    )
    genre_line = escape(" · ".join(genres[:3]))
    year_text = escape(str(year)) if year else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">'
        '<defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1">'
        f'<stop offset="0" stop-color="hsl({top},45%,32%)"/>'
        f'<stop offset="1" stop-color="hsl({bottom},55%,14%)"/>'
        "</linearGradient></defs>"
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="url(#g)"/>'
        f'<text fill="#f4f1ea" font-family="system-ui, sans-serif" font-weight="700" '
        f'font-size="{size}" text-anchor="middle">{title_tspans}</text>'
        f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT - 60}" fill="#e8e2d0" '
        f'font-family="system-ui, sans-serif" font-size="20" '
        f'text-anchor="middle">{year_text}</text>'
        f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT - 30}" fill="#cfc8b4" '
        f'font-family="system-ui, sans-serif" font-size="15" '
        f'text-anchor="middle">{genre_line}</text>'
        "</svg>"
    )
