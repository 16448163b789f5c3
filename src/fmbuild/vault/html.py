"""Raw HTML in a note that would run in a reader's browser: script and frame elements, `on…=`
event handlers and `javascript:` URLs (the site renders notes as HTML); also Python-Markdown
`attr_list` blocks (`{ onload=… }`, `{: src="https://…" }`) that would add such attributes."""

from __future__ import annotations

import re
from html import unescape
from typing import Iterator

from fmbuild.vault.lines import Lines
from fmbuild.vault.model import Hazard

_HTML_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:[^<>\"']|\"[^\"]*\"|'[^']*')*)>?", re.S)
_ATTRIBUTE = re.compile(
    r"""(?:^|\s|/)([^\s"'<>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""", re.S
)
_RUNNING_ELEMENTS = {"script": "script", "iframe": "iframe", "frame": "iframe", "object": "iframe", "embed": "iframe"}
_URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "srcdoc", "poster", "background"}
_SCRIPT_SCHEME = re.compile(r"^(?:javascript|vbscript|data\s*:\s*text/html)\s*:?", re.I)
_CONTROL = re.compile(r"[\x00-\x20]+")


def script_url(value: str) -> bool:
    """Whether a URL runs script once a browser has decoded entities and dropped blanks."""
    return bool(_SCRIPT_SCHEME.match(_CONTROL.sub("", unescape(value))))


def find_hazards(masked: str, lines: Lines) -> Iterator[Hazard]:
    for m in _HTML_TAG.finditer(masked):
        if m.group(1):
            continue  # closing tag
        name = m.group(2).lower()
        line, col = lines.pos(m.start())
        snippet = m.group(0)[:60]
        if name in _RUNNING_ELEMENTS:
            yield Hazard(_RUNNING_ELEMENTS[name], snippet, line, col)
        for a in _ATTRIBUTE.finditer(m.group(3)):
            attr = a.group(1).lower()
            value = (a.group(2) or "").strip("\"'")
            if attr.startswith("on") and len(attr) > 2:
                yield Hazard("event-handler", snippet, line, col)
            elif attr in _URL_ATTRIBUTES and value and script_url(value):
                yield Hazard("javascript-url", snippet, line, col)


# Python-Markdown's attr_list: `{: #id .class key=value }` or `{ … }` after an element or alone
# on the line after a block. `{{…}}` (metric references) is not attr_list.
_ATTR_LIST = re.compile(
    r"""(?<!\{)\{:?[ \t]*((?:(?:[#.][\w-]+|[\w:.-]+=(?:"[^"\n]*"|'[^'\n]*'|[^\s}"']+))[ \t]*)+)\}(?!\})"""
)
_ATTR_LIST_PAIR = re.compile(r"""([\w:.-]+)=("[^"\n]*"|'[^'\n]*'|[^\s}"']+)""")
# Attributes the site's allow-list would drop because they load, run or restyle from outside.
_ATTR_LIST_LOADING = {"src", "srcset", "srcdoc", "data", "poster", "background", "formaction", "action",
                      "xlink:href", "ping", "style"}


def find_attr_list_hazards(masked: str, lines: Lines) -> Iterator[Hazard]:
    """`attr_list` attributes that add a handler, an active URL or a resource to load."""
    for m in _ATTR_LIST.finditer(masked):
        snippet = m.group(0)[:60]
        line, col = lines.pos(m.start())
        for pair in _ATTR_LIST_PAIR.finditer(m.group(1)):
            attr = pair.group(1).lower()
            value = pair.group(2).strip("\"'")
            if attr.startswith("on") and len(attr) > 2:
                yield Hazard("attr-list-handler", snippet, line, col)
            elif attr in _URL_ATTRIBUTES and script_url(value):
                yield Hazard("javascript-url", snippet, line, col)
            elif attr == "style":
                from fmbuild.site.harden import style_allowed  # the site's own CSS rule, not a copy

                if not style_allowed(value):
                    yield Hazard("attr-list-attribute", snippet, line, col)
            elif attr in _ATTR_LIST_LOADING:
                yield Hazard("attr-list-attribute", snippet, line, col)
