"""Scaffolding for contributors: `fmbuild new` notes and modules, and the Obsidian templates.

    notes.NoteSpec / notes.render_note(spec) -> str     a note's text: frontmatter + section skeleton
    skeletons.SECTIONS[kind]                              the sections WRITING.md asks of each kind
    modules.module_files(name, title) -> {file: text}     run.py, README.md, module.toml
    create.create_note(...) / create.create_module(...)   write them, never over an existing file
    templates.render_templates() -> {file: text}          vault/templates/*.md, same skeletons

One renderer serves both `fmbuild new` and the Obsidian templates, so the two cannot drift.
"""
