"""Editions: the manual frozen at one commit, hashed, compiled, signed and compared.

    cut.cut_edition(config, vault, name, options) -> CutResult     editions/<NAME>/, atomically
    readiness.assess(config, vault) -> Readiness                    check errors, unverified notes
    manifest.build_manifest(...) -> dict                            notes, modules, edges, versions
    changelog.compare(old, new) -> Changelog                         what changed between Editions
    manual.compile_manual(...) -> str                                one self-contained HTML file
    store: the editions/ folder (names, listing, atomic writes)
    signing: Ed25519 keys and signatures; integrity: re-hash an Edition and check its signature

The site reads what this package writes (`fmbuild.site.editions`): `manifest.json` (`name`,
`date`, `commit`), `CHANGELOG.md` and `manual.html`.
"""
