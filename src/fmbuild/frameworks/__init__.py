"""Framework reference lists that ship with fmbuild, and look-ups over them.

    from fmbuild import frameworks
    frameworks.lookup("AML.T0043")      # Entry(id='AML.T0043', name='Craft Adversarial Data', ...)
    frameworks.lookup("LLM01:2025")     # the OWASP LLM 2025 entry LLM01 (year suffix accepted)
    frameworks.framework_of("ML05")     # 'owasp-ml' (by shape; ML05 need not exist)
    frameworks.lookup("LLM03:2026")     # the OWASP LLM 2026 entry (its ID keeps the year: 2026 renumbered)
    frameworks.versions()               # {'atlas': '5.6.0', 'owasp-llm': '2025', 'owasp-llm-2026': '2026', 'owasp-ml': '2023'}

The data files and how they were produced are described in `frameworks/data/README.md`.
"""

from fmbuild.frameworks.reference import (
    ATLAS,
    OWASP_LLM,
    OWASP_LLM_2026,
    OWASP_ML,
    Entry,
    Framework,
    ReferenceDataError,
    entries,
    framework_of,
    frameworks,
    lookup,
    normalize_id,
    suggest,
    versions,
)

__all__ = [
    "ATLAS",
    "OWASP_LLM",
    "OWASP_LLM_2026",
    "OWASP_ML",
    "Entry",
    "Framework",
    "ReferenceDataError",
    "entries",
    "framework_of",
    "frameworks",
    "lookup",
    "normalize_id",
    "suggest",
    "versions",
]
