"""Raw HTML in notes: only a small allowlist of harmless tags and attributes reaches the site.

`check` reports script, iframe, event handlers and `javascript:` URLs as errors; the site does
not rely on that. Any other tag, any attribute outside the list, a URL with an active scheme, or
an element that would load something from another host is written out as visible text (escaped),
so the reader sees what the author wrote and the browser runs nothing and fetches nothing.
"""

from __future__ import annotations

import html
import re

ALLOWED_TAGS = frozenset(
    ["a", "abbr", "b", "blockquote", "br", "caption", "center", "cite", "code", "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "u", "ul", "var"]
)
ALLOWED_ATTRS = frozenset(
    ["align", "alt", "cite", "class", "colspan", "datetime", "height", "href", "id", "lang", "name", "open", "rowspan", "scope", "span", "src", "start", "title", "type", "width"]
)
URL_ATTRS = frozenset({"href", "src", "cite"})
SAFE_SCHEMES = ("http:", "https:", "mailto:")

TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s[^<>]*)?)(/?)>")
_ATTR = re.compile(r"""([^\s"'=<>/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):")


def safe_url(value: str, *, loads: bool) -> bool:
    """A link may go anywhere over http(s)/mailto; a resource that loads (`src`) must be local,
    so the site never makes a third-party request."""
    decoded = html.unescape(value).strip()
    compact = re.sub(r"[\x00-\x20]", "", decoded).lower()
    scheme = _SCHEME.match(compact)
    if loads:
        return scheme is None and not compact.startswith("//")
    if scheme is None:
        return True
    return compact.startswith(SAFE_SCHEMES)


def tag_is_safe(match: re.Match[str]) -> bool:
    name = match.group(2).lower()
    if name not in ALLOWED_TAGS:
        return False
    if match.group(1):  # a closing tag carries nothing
        return not match.group(3).strip()
    for attr in _ATTR.finditer(match.group(3) or ""):
        key = attr.group(1).lower()
        value = next((v for v in attr.group(2, 3, 4) if v is not None), "")
        if key not in ALLOWED_ATTRS:
            return False
        if key in URL_ATTRS and not safe_url(value, loads=(key == "src")):
            return False
        if "&#" in value and key in URL_ATTRS:  # entity-encoded schemes are a classic bypass
            return False
    return True


def neutralise(text: str) -> tuple[str, list[str]]:
    """Escape every raw HTML tag in `text` that is not on the allowlist.

    Returns the new text and the tags that were escaped (for the build log).
    """
    escaped: list[str] = []

    def repl(m: re.Match[str]) -> str:
        if tag_is_safe(m):
            return m.group(0)
        escaped.append(m.group(0))
        return html.escape(m.group(0), quote=False)

    return TAG.sub(repl, text), escaped


_INLINE_LINK = re.compile(r"(!?)\[([^\[\]\n]*)\]\(\s*<?([^\s)>]*)>?[^)]*\)")


def clean_inline(text: str) -> str:
    """Author text reused inside generated Markdown (a link's label): unsafe tags escaped, and
    any nested link or image whose URL is active or remote reduced to its text."""
    text, _ = neutralise(text)

    def link(m: re.Match[str]) -> str:
        url = m.group(3)
        if safe_url(url, loads=bool(m.group(1))):
            return m.group(0)
        return m.group(2)

    return _INLINE_LINK.sub(link, text)
