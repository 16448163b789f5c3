"""The pages of the site: one module per kind of page, each returning `Page` objects.

Links meant for MkDocs to resolve and validate are written as Markdown (`[t](../x.md#a)`);
panels that show text from runs are raw HTML rendered by Jinja2 with autoescaping, so a log
line or a metric name can never become markup.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from functools import lru_cache

import jinja2


@dataclass
class Page:
    path: str  # docs-relative, '.md'
    title: str
    body: str  # Markdown, without the YAML header
    meta: dict[str, object] = field(default_factory=dict)

    def render(self) -> str:
        # JSON values are YAML flow scalars and collections, and far cheaper to write than
        # yaml.safe_dump on a thousand pages.
        # MkDocs and Material print page titles as HTML (nav, <title>, search): escape them here.
        meta = {"title": html.escape(self.title, quote=False), **self.meta}
        header = "".join(f"{key}: {json.dumps(value, ensure_ascii=False)}\n" for key, value in meta.items())
        return f"---\n{header}---\n\n{self.body.rstrip()}\n"


@lru_cache(maxsize=1)
def templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("fmbuild.site", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render_html(template: str, **values: object) -> str:
    """A raw HTML block for a Markdown page (Python-Markdown keeps a block open until its
    closing tag, so a log's blank lines stay inside it)."""
    return templates().get_template(template).render(**values).strip()
