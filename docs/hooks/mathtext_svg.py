r"""MkDocs hook: render the math that ``pymdownx.arithmatex`` marks up as SVG images, at build time.

arithmatex (``generic: true``) wraps inline math in ``<span class="arithmatex">\(...\)</span>`` and display math
in ``<div class="arithmatex">\[...\]</div>``. This hook replaces each with an ``<img>`` holding an SVG drawn by
matplotlib's mathtext (Computer Modern glyphs as paths), so the site needs no JavaScript, no web font and no network
to show equations. The TeX source stays in the ``alt`` text. mathtext covers the TeX subset used here (sums,
fractions, sub/superscripts, ``\operatorname``, ``\mathrm``); an expression it cannot parse fails the build with
the page's name.
"""

from __future__ import annotations

import base64
import html
import io
import re
from functools import lru_cache
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.mathtext import MathTextParser

_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.DOTALL)
_DISPLAY = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.DOTALL)
# Glyphs are drawn at this size in points; the <img> is then sized in em, so equations follow the text size.
_POINTS = 12.0
_INLINE_SCALE = 1.1
_DISPLAY_SCALE = 1.25
_STYLE = {"svg.hashsalt": "lightning_cam", "svg.fonttype": "path"}


@lru_cache(maxsize=512)
def _render(tex: str) -> tuple[str, float, float, float]:
    """Return a base64 SVG of ``$tex$`` and its width, height and depth in em."""
    expression = f"${tex}$"
    prop = FontProperties(size=_POINTS, math_fontfamily="cm")
    with matplotlib.rc_context(_STYLE):
        width, height, depth, _, _ = MathTextParser("path").parse(expression, dpi=72, prop=prop)
        figure = Figure(figsize=(width / 72.0, height / 72.0))
        figure.text(0, depth / height, expression, fontproperties=prop, color="#222222")
        buffer = io.BytesIO()
        # No date or creator in the file, so that rebuilding the site gives identical pages.
        figure.savefig(buffer, format="svg", transparent=True, metadata={"Date": None, "Creator": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return data, width / _POINTS, height / _POINTS, depth / _POINTS


def _img(tex: str, scale: float, page: Any) -> str:
    source = " ".join(html.unescape(tex).split())  # mathtext takes one line
    try:
        data, width, height, depth = _render(source)
    except ValueError as err:
        raise ValueError(f"{page.file.src_uri}: mathtext cannot render {source!r}: {err}") from None
    style = f"width:{width * scale:.3f}em;height:{height * scale:.3f}em;vertical-align:{-depth * scale:.3f}em"
    alt = html.escape(source, quote=True)
    return f'<img class="math" alt="{alt}" title="{alt}" style="{style}" src="data:image/svg+xml;base64,{data}">'


def on_page_content(html_text: str, page: Any, **kwargs: Any) -> str:
    """Replace arithmatex's inline and display math with SVG images."""
    html_text = _DISPLAY.sub(
        lambda m: f'<div class="math-display">{_img(m.group(1), _DISPLAY_SCALE, page)}</div>', html_text
    )
    return _INLINE.sub(lambda m: _img(m.group(1), _INLINE_SCALE, page), html_text)
