"""The compiled manual as a PDF (opt-in: `fmbuild edition cut NAME --pdf`).

Chromium prints the very HTML file the Edition holds, through Playwright, with every request
refused (the manual needs none). Chromium stamps the PDF with the time it printed; those stamps
are replaced by the commit's time, byte for byte the same length so the PDF's offsets hold, and
Chromium runs in UTC so their form never changes: the same commit and the same Chromium give the
same bytes. The Chromium version goes into the manifest.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import TYPE_CHECKING

from fmbuild.editions.errors import EditionError

if TYPE_CHECKING:
    from fmbuild.editions.gitinfo import Commit

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
_STAMP = re.compile(rb"\(D:(\d{14})\+00'00'\)")
FOOTER = ('<div style="font:8px system-ui,sans-serif;width:100%;text-align:center;color:#555">'
          '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')


def find_chromium() -> str | None:
    given = os.environ.get("FMBUILD_CHROMIUM")
    if given:
        return given if os.path.isfile(given) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def render_pdf(html: str, commit: Commit) -> tuple[bytes, str]:
    """The PDF's bytes and the Chromium version that printed them."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise EditionError("--pdf needs the playwright package (pip install playwright)") from None
    executable = find_chromium()
    if executable is None:
        raise EditionError("--pdf needs Chromium: install it (Debian: apt-get install chromium) "
                           "or name it in FMBUILD_CHROMIUM")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=ARGS, headless=True,
                                                 env={**os.environ, "TZ": "UTC"})
            try:
                page = browser.new_page()
                page.route("**/*", lambda route: route.abort())  # nothing may load while printing
                page.set_content(html, wait_until="load")
                data = page.pdf(format="A4", print_background=True, outline=True, tagged=True,
                                display_header_footer=True, header_template="<div></div>", footer_template=FOOTER,
                                margin={"top": "16mm", "bottom": "18mm", "left": "16mm", "right": "16mm"})
                version = browser.version
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise EditionError(f"--pdf: Chromium ({executable}) failed: {str(exc).splitlines()[0]}") from None
    stamp = commit.date.strftime("%Y%m%d%H%M%S").encode()
    return _STAMP.sub(lambda m: b"(D:" + stamp + b"+00'00')", data), version
