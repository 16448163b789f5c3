"""The website: the vault converted to standard Markdown by fmbuild itself, then built with
MkDocs and Material.

    build.py           the stages of `fmbuild build` (check, guard, stage, MkDocs, Editions)
    convert.py         Obsidian Markdown -> standard Markdown, one page at a time
    source.py          a note's text and its code/comment regions (the parser's own rules)
    anchors.py         heading and block anchors, with MkDocs' slug function
    callouts.py        callouts -> admonitions
    sanitize.py        the raw-HTML allowlist
    edits.py           positional edits applied in one pass
    urls.py            docs paths, page URLs, relative links
    evidence_view.py   committed evidence records, shaped for pages
    pages/             the note page and every generated page
    editions.py        the Editions page, published manuals, versions.json
    mkdocs_config.py   the generated mkdocs.yml (no third-party requests)
    staging.py         the incremental staging folder
    output.py          the output folder's guard and marker
    templates/, assets/  Jinja2 panels; CSS, JS and the vendored Cytoscape.js
"""
