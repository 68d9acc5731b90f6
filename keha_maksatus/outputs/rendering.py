"""Text from the input made safe for each output format: HTML through autoescaping
Jinja2 templates, Markdown by escaping, plotly labels by HTML-escaping, spreadsheet
cells as text, never formulas."""

from __future__ import annotations

import functools
import html
import re

# Markdown's inline markup: code, emphasis, links and images, HTML and autolinks, table
# cells, headings, strikethrough, entities. Escaped wherever they stand.
_MARKDOWN_INLINE = re.compile(r"([\\`*_\[\]<>|#~&!])")
# GFM's extended autolinks (`http://x`, `www.x.fi`, `a@b.fi`) need no markup at all:
# the colon before //, the dot after www and the @ are escaped to break them.
_MARKDOWN_AUTOLINK = re.compile(r"(:(?=//)|(?<=www)\.|@)", re.IGNORECASE)
# What opens a block at the start of a line: a list item, thematic break or setext
# underline (- + =), an ordered list item (digits then . or )).
_MARKDOWN_LINE_START = re.compile(r"^(\d*)([-+=.)])")
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
# A text cell starting with one of these is a formula to a spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def markdown_text(text: str) -> str:
    """Plain text as Markdown that renders as that text on one line (line breaks as
    spaces): no markup, heading, link, image, HTML or table break can come of it."""
    # Space at the ends shows in no rendering, but four leading spaces open a code block.
    text = _LINE_BREAKS.sub(" ", text).replace("\x00", "\ufffd").strip()
    text = _MARKDOWN_INLINE.sub(r"\\\1", text)
    text = _MARKDOWN_AUTOLINK.sub(r"\\\1", text)
    return _MARKDOWN_LINE_START.sub(r"\1\\\2", text, count=1)


def plotly_text(text: str) -> str:
    """Text for a plotly title, label, legend or hover: plotly renders some HTML tags
    (<b>, <a href>, <br>, ...) in them but shows &amp; &lt; &gt; as their characters.
    Quotes stay as they are: plotly would show &quot; as written, and without < no tag
    (nor attribute) can start."""
    return html.escape(text, quote=False)


@functools.cache
def _environment():
    # Made (and jinja2 imported) at the first page: the exports use this module without it.
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("keha_maksatus.outputs", "templates"),
        autoescape=True,  # every template here is HTML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_template(name: str, **context) -> str:
    """An HTML page from keha_maksatus/outputs/templates/, every value autoescaped (mark trusted
    HTML with markupsafe.Markup)."""
    return _environment().get_template(name).render(**context)
